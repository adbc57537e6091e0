"""The public capture form: what a prospect fills in at /apply/. The intake service decides."""

from django import forms

from leads.attachments import ACCEPT_ATTRIBUTE, ACCEPTED
from leads.capture_guard import HONEYPOT_FIELD
from leads.intake import MAX_LENGTHS
from leads.normalization import normalize_email, normalize_phone


class CaptureForm(forms.Form):
    first_name = forms.CharField(
        max_length=MAX_LENGTHS["first_name"],
        label="First name",
        widget=forms.TextInput(attrs={"autocomplete": "given-name"}),
        error_messages={"required": "Tell us your first name."},
    )
    last_name = forms.CharField(
        max_length=MAX_LENGTHS["last_name"],
        required=False,
        label="Last name",
        widget=forms.TextInput(attrs={"autocomplete": "family-name"}),
    )
    email = forms.CharField(
        max_length=MAX_LENGTHS["email"],
        label="E-mail",
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
        error_messages={"required": "Give us an e-mail address to reply to."},
    )
    phone = forms.CharField(
        max_length=MAX_LENGTHS["phone"],
        required=False,
        label="Phone",
        widget=forms.TextInput(attrs={"type": "tel", "autocomplete": "tel"}),
        help_text="With the country code if you are outside the US.",
    )
    company = forms.CharField(
        max_length=MAX_LENGTHS["company"],
        required=False,
        label="Company",
        widget=forms.TextInput(attrs={"autocomplete": "organization"}),
    )
    message = forms.CharField(
        max_length=MAX_LENGTHS["message"],
        required=False,
        label="Message",
        widget=forms.Textarea(attrs={"rows": 5}),
    )
    resume = forms.FileField(
        required=False,
        label="Resume / CV",
        widget=forms.ClearableFileInput(attrs={"accept": ACCEPT_ATTRIBUTE}),
        help_text=f"Optional. {ACCEPTED}",
    )
    consent = forms.BooleanField(
        label="I agree that you may store these details and contact me about my enquiry.",
        error_messages={"required": "Tick the box to let us store your details and contact you."},
    )
    # The honeypot: hidden from people (CSS and aria-hidden), skipped by keyboards and autofill.
    website = forms.CharField(
        required=False,
        label="Leave this field empty",
        widget=forms.TextInput(attrs={"tabindex": "-1", "autocomplete": "off"}),
    )

    # The service checks these too; here they are reported together with every other field's error.
    def clean_email(self):
        return normalize_email(self.cleaned_data["email"])

    def clean_phone(self):
        return normalize_phone(self.cleaned_data["phone"])

    def honeypot_filled(self):
        return bool((self.data.get(HONEYPOT_FIELD) or "").strip())

    def service_arguments(self):
        data = self.cleaned_data
        return {
            name: data[name]
            for name in ("first_name", "last_name", "email", "phone", "company", "message", "consent")
        } | {"resume": data.get("resume") or None}

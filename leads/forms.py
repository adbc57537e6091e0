"""Forms for the board and lead page: they parse input; the services decide."""

from django import forms

from leads import selectors
from leads.models import Activity, Lead, Stage
from leads.services import EDITABLE_FIELDS


def apply_service_errors(form, error):
    """Show a service's ValidationError on the form: on the field it names, else at the top."""
    if hasattr(error, "error_dict"):
        for field, messages in error.message_dict.items():
            target = field if field in form.fields else None
            for message in messages:
                form.add_error(
                    target, message if target else f"{field.replace('_', ' ').capitalize()}: {message}"
                )
    else:
        form.add_error(None, error)
    duplicate = getattr(error, "existing", None) if getattr(error, "visible", False) else None
    if duplicate is not None:
        form.duplicate = duplicate


class QuickAddForm(forms.Form):
    name = forms.CharField(
        max_length=201, label="Name", widget=forms.TextInput(attrs={"autocomplete": "off"})
    )
    email = forms.CharField(
        max_length=254, required=False, label="E-mail", widget=forms.EmailInput(attrs={"autocomplete": "off"})
    )
    phone = forms.CharField(
        max_length=40,
        required=False,
        label="Phone",
        widget=forms.TextInput(attrs={"type": "tel", "autocomplete": "off"}),
    )
    company = forms.CharField(max_length=200, required=False, label="Company")
    source = forms.ModelChoiceField(queryset=None, label="Source", empty_label=None)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["source"].queryset = selectors.active_sources()
        # A callable: read when the form renders, not when a submitted form is validated.
        self.fields["source"].initial = selectors.default_source_id


class LeadEditForm(forms.Form):
    first_name = forms.CharField(max_length=100, required=False)
    last_name = forms.CharField(max_length=100, required=False)
    email = forms.CharField(max_length=254, required=False, label="E-mail", widget=forms.EmailInput)
    phone = forms.CharField(max_length=40, required=False, widget=forms.TextInput(attrs={"type": "tel"}))
    company = forms.CharField(max_length=200, required=False)
    title = forms.CharField(max_length=200, required=False, label="Job title")
    source = forms.ModelChoiceField(queryset=None, empty_label=None)
    value = forms.DecimalField(max_digits=12, decimal_places=2, min_value=0, label="Expected value")
    priority = forms.ChoiceField(choices=Lead.Priority.choices)
    notes = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    version = forms.IntegerField(widget=forms.HiddenInput)

    def __init__(self, *args, lead=None, **kwargs):
        if lead is not None and not kwargs.get("data") and not args:
            kwargs["initial"] = {f: getattr(lead, f) for f in EDITABLE_FIELDS} | {"version": lead.version}
        super().__init__(*args, **kwargs)
        self.fields["source"].queryset = selectors.active_sources() | _current(lead, "source")
        # Each field also posts the value the person started from, so a conflict can name
        # exactly the fields someone else changed meanwhile.
        for name in EDITABLE_FIELDS:
            self.fields[name].show_hidden_initial = True

    def changes(self):
        return {f: self.cleaned_data[f] for f in EDITABLE_FIELDS}

    def started_from(self, name):
        """The value of `name` when the page was loaded, as posted (None if not posted)."""
        return self.data.get(self.add_initial_prefix(name))


def form_value(lead, name):
    """A lead field as an edit form posts it: the source's id, text for the rest."""
    value = getattr(lead, f"{name}_id" if name == "source" else name)
    return "" if value is None else str(value)


def _current(lead, relation):
    """Keep a lead's archived source selectable on its own edit form."""
    model = Lead._meta.get_field(relation).related_model
    return model.objects.filter(pk=getattr(lead, f"{relation}_id", None))


class MoveForm(forms.Form):
    stage = forms.ModelChoiceField(queryset=Stage.objects.filter(archived=False), empty_label=None)
    version = forms.IntegerField(required=False, widget=forms.HiddenInput)
    lost_reason = forms.CharField(
        max_length=500, required=False, label="Why was it lost?", widget=forms.Textarea(attrs={"rows": 2})
    )


class ReassignForm(forms.Form):
    owner = forms.ModelChoiceField(queryset=None, required=False, empty_label="Unassigned")
    version = forms.IntegerField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["owner"].queryset = selectors.assignable_owners()


class VersionForm(forms.Form):
    """Claim and delete carry only the version the person was looking at."""

    version = forms.IntegerField(required=False, widget=forms.HiddenInput)


class ActivityForm(forms.Form):
    kind = forms.ChoiceField(
        choices=[(k.value, k.label) for k in Activity.LOGGABLE_KINDS],
        widget=forms.RadioSelect,
        label="What happened",
    )
    body = forms.CharField(
        required=False, max_length=10_000, label="Summary", widget=forms.Textarea(attrs={"rows": 3})
    )
    outcome = forms.ChoiceField(
        choices=[("", "—")] + Activity.CallOutcome.choices, required=False, label="Call outcome"
    )
    duration_minutes = forms.IntegerField(required=False, min_value=0, max_value=24 * 60, label="Minutes")

    def clean(self):
        data = super().clean()
        if data.get("kind") == Activity.Kind.CALL and not data.get("outcome"):
            self.add_error("outcome", "Choose how the call went.")
        return data

"""Forms to schedule and complete follow-ups (lead page, /follow-ups/): they parse; the services decide."""

from django import forms

from leads import selectors
from leads.models import FollowUp

DATETIME_LOCAL_FORMAT = "%Y-%m-%dT%H:%M"


class ScheduleFollowUpForm(forms.Form):
    kind = forms.ChoiceField(choices=FollowUp.Kind.choices, initial=FollowUp.Kind.CALL, label="Type")
    title = forms.CharField(
        max_length=200, label="What for", error_messages={"required": "Say what the follow-up is for."}
    )
    due_at = forms.DateTimeField(
        label="Due",
        error_messages={"required": "Choose when the follow-up is due."},
        input_formats=[DATETIME_LOCAL_FORMAT, "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format=DATETIME_LOCAL_FORMAT),
    )
    assigned_to = forms.ModelChoiceField(queryset=None, required=False, label="Assigned to", empty_label="Me")
    notes = forms.CharField(required=False, max_length=10_000, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args, can_assign=False, **kwargs):
        kwargs.setdefault("auto_id", "id_follow_up_%s")
        super().__init__(*args, **kwargs)
        if can_assign:
            self.fields["assigned_to"].queryset = selectors.assignable_owners()
        else:
            # Salespeople schedule for themselves: no menu, and nothing posted is honoured.
            del self.fields["assigned_to"]


class CompleteFollowUpForm(forms.Form):
    outcome = forms.ChoiceField(choices=[("", "How did it go?"), *FollowUp.Outcome.choices], required=False)
    notes = forms.CharField(required=False, max_length=10_000, widget=forms.Textarea(attrs={"rows": 2}))
    duration_minutes = forms.IntegerField(required=False, min_value=0, max_value=24 * 60, label="Minutes")

    def __init__(self, *args, follow_up, **kwargs):
        # Many of these share a page: each gets ids of its own.
        kwargs.setdefault("auto_id", f"id_fu{follow_up.pk}_%s")
        super().__init__(*args, **kwargs)
        self.follow_up = follow_up

    def clean(self):
        data = super().clean()
        if not data.get("outcome") and "outcome" not in self.errors:
            self.add_error("outcome", "Choose how it went.")
        return data

"""The CSV import's forms: the upload, and the mapping step (a menu per column, defaults, duplicates)."""

from django import forms

from leads import imports, policies, selectors
from leads.models import ImportJob, Stage

# What each lead field is called in the column menus, in imports.IMPORT_FIELDS' order.
FIELD_LABELS = {
    "name": "Full name",
    "first_name": "First name",
    "last_name": "Last name",
    "email": "E-mail",
    "phone": "Phone",
    "company": "Company",
    "title": "Job title",
    "source": "Source",
    "owner_email": "Owner (e-mail)",
    "stage": "Stage",
    "value": "Deal value",
    "notes": "Notes",
}
IGNORE_LABEL = "— Ignore this column —"


class ImportUploadForm(forms.Form):
    file = forms.FileField(
        label="CSV file", widget=forms.ClearableFileInput(attrs={"accept": ".csv,text/csv"})
    )


def column_field_name(index):
    return f"column_{index}"


class ImportMappingForm(forms.Form):
    """The mapping step. Without data it shows what the job holds (the suggestion after an upload)."""

    duplicate_mode = forms.ChoiceField(
        label="When a row matches an existing lead (same e-mail or phone)",
        choices=ImportJob.DuplicateMode.choices,
        widget=forms.RadioSelect,
    )
    source = forms.ModelChoiceField(
        queryset=None, required=False, label="Source for rows without a known one", empty_label="Import"
    )
    stage = forms.ModelChoiceField(
        queryset=None, required=False, label="Stage for rows without a known one", empty_label="First stage"
    )

    def __init__(self, data=None, *, job, user):
        self.job = job
        self.is_manager = policies.is_manager(user)
        initial = {"duplicate_mode": job.duplicate_mode, **(job.defaults or {})}
        for index, field in (job.mapping or {}).items():
            initial[column_field_name(index)] = field
        super().__init__(data, initial=initial)
        self.fields["source"].queryset = selectors.active_sources()
        self.fields["stage"].queryset = Stage.objects.filter(archived=False).order_by("position", "id")
        if self.is_manager:
            # Salespeople's rows always become their own, so only managers pick an owner.
            self.fields["owner"] = forms.ModelChoiceField(
                queryset=selectors.assignable_owners(),
                required=False,
                label="Owner for rows without a known one",
                empty_label="Unassigned",
            )
        choices = [("", IGNORE_LABEL)] + [
            (name, FIELD_LABELS.get(name, name)) for name in imports.IMPORT_FIELDS
        ]
        for index, header in enumerate(job.headers or []):
            self.fields[column_field_name(index)] = forms.ChoiceField(
                choices=choices, required=False, label=header or f"Column {index + 1}"
            )

    def column_fields(self):
        """(header, bound field) per file column, in file order."""
        return [self[column_field_name(index)] for index in range(len(self.job.headers or []))]

    def default_fields(self):
        names = ["source", "stage", "owner"] if self.is_manager else ["source", "stage"]
        return [self[name] for name in names]

    def settings(self):
        """What the service takes: mapping, defaults and duplicate mode (call after is_valid())."""
        data = self.cleaned_data
        mapping = {
            str(index): data[column_field_name(index)]
            for index in range(len(self.job.headers or []))
            if data.get(column_field_name(index))
        }
        defaults = {
            name: data[name].pk for name in ("source", "stage", "owner") if data.get(name) is not None
        }
        return {"mapping": mapping, "defaults": defaults, "duplicate_mode": data["duplicate_mode"]}

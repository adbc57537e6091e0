"""Forms of the users page: the invitation and "reassign all leads"; the services do the checking."""

from django import forms

from leads import policies

# The value that stands for the unassigned pool in "reassign all leads to".
UNASSIGNED = "unassigned"


class InviteForm(forms.Form):
    email = forms.EmailField(
        label="E-mail", max_length=254, widget=forms.EmailInput(attrs={"autocomplete": "off"})
    )
    first_name = forms.CharField(label="First name", max_length=150)
    last_name = forms.CharField(label="Last name", max_length=150, required=False)
    role = forms.ChoiceField(label="Role")

    def __init__(self, *args, actor, **kwargs):
        super().__init__(*args, **kwargs)
        # A forged POST with a role missing here fails as "not one of the available choices".
        self.fields["role"].choices = [(role.value, role.label) for role in policies.grantable_roles(actor)]
        self.fields["role"].initial = "sales"


class ReassignLeadsForm(forms.Form):
    to_user = forms.ChoiceField(label="Reassign to")

    def __init__(self, *args, from_user, owners, **kwargs):
        kwargs.setdefault("prefix", f"reassign-{from_user.pk}")
        super().__init__(*args, **kwargs)
        self.from_user = from_user
        self.owners = {str(user.pk): user for user in owners if user.is_active and user.pk != from_user.pk}
        self.fields["to_user"].choices = [
            ("", "Choose…"),
            (UNASSIGNED, "Unassigned (the pool)"),
            *((pk, str(user)) for pk, user in self.owners.items()),
        ]

    def new_owner(self):
        """The chosen active user, or None for the unassigned pool; call after is_valid()."""
        choice = self.cleaned_data["to_user"]
        return None if choice == UNASSIGNED else self.owners[choice]

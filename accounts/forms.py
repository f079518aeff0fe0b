from django import forms
from django.contrib.auth import get_user_model

from accounts.models import Role


class ApiKeyCreateForm(forms.Form):
    name = forms.CharField(max_length=100, required=False, help_text="What uses this key, e.g. 'support-bot prod'.")
    can_manage = forms.BooleanField(required=False, label="May define SLOs through the API (not for app keys)")


class MemberAddForm(forms.Form):
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=Role.choices, initial=Role.VIEWER)

    def clean_username(self) -> str:
        username = self.cleaned_data["username"]
        if not get_user_model().objects.filter(username=username).exists():
            raise forms.ValidationError(
                f"No user named {username!r}. Create it first: manage.py create_user {username}."
            )
        return username

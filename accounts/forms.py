from django import forms
from django.contrib.auth import get_user_model

from accounts.models import DEFAULT_SCOPES, SECRET_NAME_VALIDATOR, Role, Scope


class ApiKeyCreateForm(forms.Form):
    name = forms.CharField(max_length=100, required=False, help_text="What uses this key, e.g. 'support-bot prod'.")
    scopes = forms.MultipleChoiceField(
        choices=Scope.choices,
        initial=DEFAULT_SCOPES,
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Pick at least one scope (an app that sends traces needs only ingest)."},
        help_text="Apps that send traces need only ingest: a leaked app key then cannot read prompts and answers.",
    )


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


class SecretSetForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        validators=[SECRET_NAME_VALIDATOR],
        help_text="Used as ${NAME} in a probe's headers, or as the key name of a chat-completions probe.",
    )
    # Never rendered back, not even after a form error.
    value = forms.CharField(max_length=10_000, strip=False, widget=forms.PasswordInput(render_value=False))

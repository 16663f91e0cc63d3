"""`manage.py create_api_token USER`: print the API token of a user, creating it if needed."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from rest_framework.authtoken.models import Token


class Command(BaseCommand):
    help = "Print the REST API token of USER (username), creating it if needed. --reset replaces it."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--reset", action="store_true", help="Delete the existing token and create a new one.")

    def handle(self, *args, username: str, reset: bool, **options):
        User = get_user_model()  # noqa: N806
        try:
            user = User.objects.get(**{User.USERNAME_FIELD: username})
        except User.DoesNotExist as exc:
            raise CommandError(f'No user named "{username}".') from exc
        if not user.is_active:
            raise CommandError(f'User "{username}" is inactive; activate them before creating a token.')
        if reset:
            Token.objects.filter(user=user).delete()
        token, _ = Token.objects.get_or_create(user=user)
        self.stdout.write(token.key)

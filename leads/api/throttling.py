"""Rate limits whose rates come from settings.API_THROTTLE_RATES at request time."""

from django.conf import settings
from rest_framework import throttling


class _SettingsRateMixin:
    def get_rate(self):
        return settings.API_THROTTLE_RATES.get(self.scope)


class AnonymousRateThrottle(_SettingsRateMixin, throttling.AnonRateThrottle):
    pass


class UserRateThrottle(_SettingsRateMixin, throttling.UserRateThrottle):
    pass

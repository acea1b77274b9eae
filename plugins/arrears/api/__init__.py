"""The plugin's JSON API under ``/arrears/api/...`` (CONTRACT §7, §8): one APIRouter per area,
included by :mod:`arrears.api.app`."""

"""Swedish formats of the portal, over Django's own (django/conf/locale/sv/formats.py).

Django writes Swedish long dates as "1 december 2026"; the portal's readers (and Microsoft's
Swedish Defender pages) write dates as ISO 8601, "2026-12-01", so every date format is that.
Times are 24-hour (Django's H:i). Numbers keep Django's Swedish separators: a decimal comma and a
non-breaking space between thousands ("18 511", which never wraps inside a number).
"""

DATE_FORMAT = "Y-m-d"
DATETIME_FORMAT = "Y-m-d H:i"
SHORT_DATE_FORMAT = "Y-m-d"
SHORT_DATETIME_FORMAT = "Y-m-d H:i"
TIME_FORMAT = "H:i"
MONTH_DAY_FORMAT = "j F"

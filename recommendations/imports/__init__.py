"""Reading inventory files: records and problems, readers, normalisers, django-import-export formats
and resources. Nothing here writes; recommendations.services does (this package re-exports nothing,
so that `resources`, on top, is imported only by the admin)."""

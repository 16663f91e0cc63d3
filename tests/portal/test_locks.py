from portal.locks import job_lock


def test_second_run_of_a_job_does_not_get_the_lock_until_the_first_ends():
    with job_lock("test-job") as first:
        with job_lock("test-job") as second:
            assert (first, second) == (True, False)
        with job_lock("other-job") as other:
            assert other is True
    with job_lock("test-job") as again:
        assert again is True


def test_production_never_takes_a_job_lock_in_a_per_process_cache(settings):
    import pytest
    from django.core.exceptions import ImproperlyConfigured

    settings.JOB_LOCKS_REQUIRE_SHARED_CACHE = True
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    with pytest.raises(ImproperlyConfigured, match="shared by every process"), job_lock("purge"):
        pass

from portal.locks import job_lock


def test_second_run_of_a_job_does_not_get_the_lock_until_the_first_ends():
    with job_lock("test-job") as first:
        with job_lock("test-job") as second:
            assert (first, second) == (True, False)
        with job_lock("other-job") as other:
            assert other is True
    with job_lock("test-job") as again:
        assert again is True

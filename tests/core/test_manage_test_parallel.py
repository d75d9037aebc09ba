"""The site's own Django tests run as a developer runs them: `manage.py test
--parallel 2`, through the session's PgBouncer. Django creates test_app, migrates it
and copies it once per worker; each worker's tests go through PgBouncer; the copies
and test_app are dropped at the end."""

import pytest

from devstack.stack import PROJECT_DIR
from tests.install.servers import databases_named, manage, shown

pytestmark = pytest.mark.servers

TEST_DATABASES = "test_app"  # test_app, test_app_1, test_app_2


def test_the_site_s_django_tests_pass_in_parallel_through_pgbouncer(stack):
    env = {**stack.site_env(), "DJANGO_SETTINGS_MODULE": "config.settings"}
    args = ["test", "--parallel", "2", "--noinput", "tests.core.site_testcases"]
    result = manage(stack, args, cwd=PROJECT_DIR, env=env)
    assert result.returncode == 0, shown(result)
    assert "Cloning test database for alias 'default'" in result.stderr, shown(result)
    assert "Ran 4 tests" in result.stderr, shown(result)
    assert databases_named(stack, TEST_DATABASES) == []

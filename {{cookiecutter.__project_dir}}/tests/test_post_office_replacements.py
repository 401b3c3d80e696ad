"""The site replaces some of post_office's functions; a post_office release that changes
one of them fails here, before it fails in production."""

import inspect

import pytest
from post_office import mail
from post_office.models import Email

from {{ cookiecutter.project_slug }}.delivery import (
    post_office_replacements,
)


def parameters(function, skip_self=False):
    """(name, kind, default) of each parameter; annotations left aside."""
    found = list(inspect.signature(function).parameters.values())[skip_self:]
    return [(parameter.name, parameter.kind, parameter.default) for parameter in found]


@pytest.mark.parametrize(
    "owner, name, replacement",
    post_office_replacements.REPLACEMENTS,
    ids=[name for _, name, _ in post_office_replacements.REPLACEMENTS],
)
def test_each_replacement_takes_what_post_offices_function_takes(owner, name, replacement):
    is_method = isinstance(owner, type)

    assert parameters(post_office_replacements.REPLACED[name], skip_self=is_method) == parameters(
        replacement, skip_self=is_method
    ), f"post_office's {name} changed: see what the site's replacement must now do"


def test_post_offices_functions_are_replaced_by_the_sites():
    assert Email.dispatch is post_office_replacements.dispatch
    assert mail.send_queued is post_office_replacements.send_queued
    assert mail.send_queued_mail_until_done is post_office_replacements.send_queued_mail_until_done
    assert post_office_replacements.REPLACED["dispatch"].__module__ == "post_office.models"
    assert post_office_replacements.REPLACED["send_queued"].__module__ == "post_office.mail"

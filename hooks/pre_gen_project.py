"""Reject answers that would bake a broken site, before any file is written.

Each problem is reported on one line that names the field and the rule;
cookiecutter then removes the half-made project folder.
"""

import json
import keyword
import re
import sys
import zoneinfo
from email.utils import parseaddr

ANSWERS = json.loads(r"""{{ cookiecutter | jsonify }}""")

# Top-level modules the baked site imports or ships beside its package; a
# package of the same name would hide one of them (or be hidden by it).
SITE_MODULES = set(
    """
    aiosmtpd amqp anymail appconf asgiref billiard boto3 botocore celery click config dateutil deploy
    django djcelery_email environ flower gunicorn honcho humanize kombu manage media pip post_office
    prometheus_client psycopg psycopg_binary pytest pytest_django pytz requests setuptools site
    sqlparse static test tests tornado tzdata vine whitenoise
    """.split()
)
SHADOWED = SITE_MODULES | set(sys.stdlib_module_names)

ADDRESS = re.compile(r"[^@\s<>]+@[^@\s<>]+\.[^@\s<>.]+")
HOSTNAME = re.compile(
    r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*"
)


# Longer names would not fit the site's lines of code (100 columns).
LONGEST = {"project_name": 80, "project_slug": 60}
# Characters that would end the quoted strings these answers are written into
# (Python, TOML, .env), or start a variable in .env.
UNQUOTABLE = re.compile(r'["\\$`\x00-\x1f\x7f]')


def problems(answers):
    for field in ("project_name", "description", "author_name", "default_from_email"):
        if UNQUOTABLE.search(answers[field]):
            yield (
                f"{field} {answers[field]!r} may not contain a double quote, backslash, $, ` "
                "or control character"
            )
    if not answers["project_name"].strip():
        yield "project_name is empty: give the site a name such as Acme Mail"
    for field, longest in LONGEST.items():
        if len(answers[field]) > longest:
            yield f"{field} is {len(answers[field])} characters long: keep it to {longest}"

    slug = answers["project_slug"]
    if not slug:
        yield "project_slug is empty: give the site a Python package name such as acme_mail"
    elif not re.fullmatch(r"[a-z][a-z0-9_]*", slug) or keyword.iskeyword(slug):
        yield (
            f"project_slug {slug!r} is not a lowercase Python identifier starting with a letter "
            "(lowercase letters, digits and underscores; not a keyword)"
        )
    elif slug in SHADOWED:
        yield f"project_slug {slug!r} would shadow the module {slug!r} the site imports: choose another name"

    for field in ("author_email", "default_from_email"):
        name, address = parseaddr(answers[field])
        if not ADDRESS.fullmatch(address) or (field == "author_email" and name):
            yield f"{field} {answers[field]!r} is not an email address (like someone@example.com)"

    domain = answers["domain_name"]
    if "://" in domain or "/" in domain or not HOSTNAME.fullmatch(domain.lower()):
        yield f"domain_name {domain!r} must be a bare host name (example.com): no scheme, path, port or space"

    if answers["time_zone"] not in zoneinfo.available_timezones():
        yield f"time_zone {answers['time_zone']!r} is not an IANA time zone name (like UTC or Europe/Paris)"


errors = list(problems(ANSWERS))
for error in errors:
    print(f"ERROR: {error}", file=sys.stderr)
sys.exit(1 if errors else 0)

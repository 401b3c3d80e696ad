"""Text the tests send, kept in a file the template copies without rendering."""

# Looks like a Django template; must arrive exactly as written.
TEMPLATE_LIKE_SUBJECT = "Price {{ price }} today {% off"

# post_office templates: one to render with a name, one that cannot be rendered.
GREETING_SUBJECT = "Hello {{ name }}"
GREETING_TEXT = "Hi {{ name }}"
BROKEN_TEMPLATE_TEXT = "{% if %}"

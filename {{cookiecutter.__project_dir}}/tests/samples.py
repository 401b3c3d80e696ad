"""Text the tests send, kept in a file the template copies without rendering."""

# Looks like a Django template; must arrive exactly as written.
TEMPLATE_LIKE_SUBJECT = "Price {{ price }} today {% off"

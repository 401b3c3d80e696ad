"""What the template's tests, its bench and `make demo` share."""

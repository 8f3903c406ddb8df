"""Exception and warning classes raised by fastrec."""


class FastrecWarning(UserWarning):
    """Something worth knowing happened (a costly conversion, a fallback, ignored threads)."""


class NotFittedError(ValueError, AttributeError):
    """A model was used before ``fit``."""

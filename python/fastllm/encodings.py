"""Named encodings (being written)."""


def get_encoding(name):
    raise NotImplementedError(name)

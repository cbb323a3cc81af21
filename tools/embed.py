#!/usr/bin/env python3
"""embed.py IN OUT SYMBOL: writes a C file defining SYMBOL (the bytes of IN,
NUL-terminated) and SYMBOL_len, so a page ships inside the binary.

IN is first made self-contained (inline_page): each
<link rel="stylesheet" href="FILE"> becomes <style> with FILE's text and
each <script src="FILE"></script> a <script> with FILE's text, FILE being
beside IN. tests/integration/dashboard_fixture.py serves the page through
the same function, so both serve the same bytes."""
import os
import re
import sys

STYLESHEET = re.compile(rb'<link rel="stylesheet" href="([^"/]+)">')
SCRIPT = re.compile(rb'<script src="([^"/]+)"></script>')


def inline_page(path):
    """The page at path with its stylesheets and scripts inlined, as bytes."""
    folder = os.path.dirname(os.path.abspath(path))

    def inline(tag, closing):
        def replace(match):
            with open(os.path.join(folder, match.group(1).decode()), "rb") as f:
                text = f.read()
            # The text must not end its element early.
            if closing.lower() in text.lower():
                raise ValueError("%s holds %s" % (match.group(1).decode(), closing.decode()))
            return b"<" + tag + b">\n" + text + closing + b">"
        return replace

    with open(path, "rb") as f:
        page = f.read()
    page = STYLESHEET.sub(inline(b"style", b"</style"), page)
    return SCRIPT.sub(inline(b"script", b"</script"), page)


def main():
    src, dst, symbol = sys.argv[1:4]
    data = inline_page(src)
    with open(dst, "w") as out:
        out.write(f"/* Generated from {src} by tools/embed.py: do not edit. */\n")
        out.write("#include <stddef.h>\n\n")
        out.write(f"const char {symbol}[] = {{\n")
        for i in range(0, len(data), 16):
            out.write("    " + ", ".join(str(b) for b in data[i:i + 16]) + ",\n")
        out.write("    0,\n};\n")
        out.write(f"const size_t {symbol}_len = {len(data)};\n")


if __name__ == "__main__":
    main()

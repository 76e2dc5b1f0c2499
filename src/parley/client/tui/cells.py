"""Screen cells per grapheme cluster: an emoji with a skin tone (👍🏽), a family joined with
zero-width joiners (👨‍👩‍👧) or a flag (🇫🇷) takes two columns on a terminal, not one per code point.

prompt_toolkit 3.0 measures and places text one code point at a time (``Window._copy_body``
makes one ``Char`` per code point, its width from ``wcwidth`` of that code point alone), so
👍🏽 takes four columns in its screen model and everything after it on the row, the member
list's border included, is drawn where the terminal does not expect it.

What it already does right is merge a code point of width zero into the cell before it (how
it shows decomposed accents): the cell then holds one ``Char`` of several code points, which is
compared, redrawn and written whole. So each cluster of several code points is sent through
in two parts, told apart by a style token in brackets (which the style parser ignores):

- its first code point carries the cluster's width (``[cells:2]``): the cell it opens has the
  width of the whole cluster, and so does every ``Char`` later made from it (the merged
  cluster, and the copies that window and cursor-line styles add to);
- the code points after it are marked ``[cells:tail]``: width zero, so each is merged into the
  cell the first one opened. The cell after the cluster, which prompt_toolkit also writes the
  zero-width code point to, gets a blank instead, so no lone modifier is ever drawn there.

Both need ``Char`` to take its width from the style, which is one place: the factory of
``prompt_toolkit.layout.screen._CHAR_CACHE``, through which every ``Char`` of a screen is made.
:func:`install` sets that factory to :class:`_Cell`, which acts like ``Char`` for every style
without the two tokens. This relies on prompt_toolkit 3.0 internals (pinned in
requirements.txt); tests/client/test_cells.py renders through a real ``Window`` and fails if
they change.

Terminals do not all agree with that width (wcwidth's, which current terminals follow): tmux
3.3 draws 👍🏽 in four columns and ❤️ in one. :class:`ClusterOutput` saves the cursor before a
cluster and puts it where the screen model says the cluster ends, so whatever follows on the
row, the border and the member list included, is drawn in its column on any terminal.
"""

from __future__ import annotations

from prompt_toolkit.formatted_text import StyleAndTextTuples
from prompt_toolkit.layout import screen
from prompt_toolkit.layout.processors import Processor, Transformation, TransformationInput
from prompt_toolkit.output import Output, create_output
from prompt_toolkit.output.vt100 import Vt100_Output
from wcwidth import iter_graphemes, wcswidth

TAIL = "[cells:tail]"
_WIDTH = "[cells:"
_BLANK = " "
# VT100 save cursor, restore cursor, and cursor forward.
_SAVE, _RESTORE, _FORWARD = "\x1b7", "\x1b8", "\x1b[{}C"


class _Cell(screen.Char):
    """A ``Char`` whose width a cluster token in its style decides."""

    __slots__ = ()

    def __init__(self, char: str = " ", style: str = "") -> None:
        if TAIL in style:
            # Written to the cell after the cluster (and merged into the cluster's cell by
            # prompt_toolkit): a plain blank there, which takes no column of its own.
            super().__init__(_BLANK, "")
            self.width = 0
            return
        super().__init__(char, style)
        start = style.find(_WIDTH)
        if start >= 0:
            self.width = int(style[start + len(_WIDTH) : style.index("]", start)])


def install() -> None:
    """Make prompt_toolkit's screen cells honour the cluster tokens (once per process)."""
    screen._CHAR_CACHE.get_value = _Cell


def cells(fragments: StyleAndTextTuples) -> StyleAndTextTuples:
    """``fragments`` with each cluster of several code points marked to fill one cell."""
    result: StyleAndTextTuples = []
    for fragment in fragments:
        style, text = fragment[0], fragment[1]
        if "[ZeroWidthEscape]" in style or text.isascii():
            result.append(fragment)
            continue
        plain = ""
        for cluster in iter_graphemes(text):
            width = wcswidth(cluster)
            if len(cluster) == 1 or width < 0:
                plain += cluster
                continue
            if plain:
                result.append((style, plain, *fragment[2:]))
                plain = ""
            result.append((f"{style} {_WIDTH}{width}]", cluster[0], *fragment[2:]))
            result.append((f"{style} {TAIL}", cluster[1:], *fragment[2:]))
        if plain:
            result.append((style, plain, *fragment[2:]))
    return result


class ClusterCells(Processor):
    """The same for an input line: one cell per cluster. Code points keep their positions
    (nothing is added or removed), so the cursor mapping stays as it is.
    """

    def apply_transformation(self, transformation_input: TransformationInput) -> Transformation:
        return Transformation(cells(transformation_input.fragments))


class ClusterOutput(Vt100_Output):
    """A VT100 terminal on which the cursor ends a cluster where the screen model says, however
    many columns the terminal itself gave the cluster. The renderer writes a cell's text with
    one ``write``, so a cluster always arrives whole here.
    """

    def write(self, data: str) -> None:
        if len(data) > 1 and not data.isascii():
            width = wcswidth(data)
            if width > 0 and next(iter_graphemes(data)) == data:
                self.write_raw(_SAVE)
                super().write(data)
                self.write_raw(_RESTORE + _FORWARD.format(width))
                return
        super().write(data)


def terminal_output() -> Output:
    """prompt_toolkit's output for this terminal, a :class:`ClusterOutput` where it is VT100."""
    output = create_output()
    if type(output) is not Vt100_Output:
        return output  # not a terminal (plain text), or a Windows console
    return ClusterOutput(
        output.stdout,
        output.get_size,
        term=output.term,
        default_color_depth=output.default_color_depth,
        enable_bell=output.enable_bell,
        enable_cpr=output.enable_cpr,
    )

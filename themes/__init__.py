"""beacon-triage's themes: colours as data, registered by the app, chosen at run time.

Every colour the TUI shows comes from these (through the theme variables the widgets'
CSS uses: ``$error`` for a high score, ``$accent`` for chart bars...), so a theme is the
only place a colour is written down. ``beacon-ansi`` uses only the 16 ANSI colours, so
it stays readable over SSH on terminals without 256 colours, and follows the terminal's
own palette: it never uses bright black for information, and every badge sets both its
colours (black on yellow), so it reads on dark and light palettes alike.
``themes.tcss`` holds the few rules a theme needs beyond colours (bold
cursors and underlined headers for high contrast, reverse video for ANSI).
"""

from __future__ import annotations

from pathlib import Path

from textual.theme import Theme

DARK = Theme(
    name="beacon-dark",
    primary="#4aa3df",
    secondary="#7a8fa6",
    accent="#f0a030",
    warning="#e6b450",
    error="#f26d6d",
    success="#7fd962",
    foreground="#d7dde5",
    background="#0f1419",
    surface="#151b23",
    panel="#1f2833",
    dark=True,
)

LIGHT = Theme(
    name="beacon-light",
    primary="#0b62c4",
    secondary="#57606a",
    accent="#b35900",
    warning="#8a5a00",
    error="#c2252d",
    success="#1a7f37",
    foreground="#1f2328",
    background="#f6f7f9",
    surface="#ffffff",
    panel="#e3e8ee",
    dark=False,
)

HIGH_CONTRAST = Theme(
    name="beacon-contrast",
    primary="#00d7ff",
    secondary="#ffffff",
    accent="#ffff00",
    warning="#ffd700",
    error="#ff5f5f",
    success="#00ff87",
    foreground="#ffffff",
    background="#000000",
    surface="#000000",
    panel="#262626",
    dark=True,
    text_alpha=1.0,
    variables={
        "text-muted": "#e4e4e4",
        "text-disabled": "#bcbcbc",
        "border": "#ffffff",
        "border-blurred": "#bcbcbc",
        "block-cursor-background": "#ffff00",
        "block-cursor-foreground": "#000000",
        "block-cursor-text-style": "bold",
        "block-cursor-blurred-background": "#5f5f5f",
        "block-cursor-blurred-foreground": "#ffffff",
        "footer-key-foreground": "#ffff00",
        "input-cursor-background": "#ffff00",
        "input-cursor-foreground": "#000000",
    },
)

ANSI = Theme(
    name="beacon-ansi",
    ansi=True,
    primary="ansi_blue",
    secondary="ansi_cyan",
    accent="ansi_yellow",
    warning="ansi_yellow",
    error="ansi_red",
    success="ansi_green",
    foreground="ansi_default",
    background="ansi_default",
    surface="ansi_default",
    panel="ansi_default",
    boost="ansi_default",
    dark=True,
    variables={
        "ansi-background": "ansi_black",
        "ansi-foreground": "ansi_white",
        # No bright black (SGR 90) for anything that informs: on many palettes it is
        # near-invisible on black, and on light palettes grey on white. Muted text keeps
        # the terminal's own foreground; styles (italic, bold) carry the difference.
        "text-muted": "ansi_default",
        "text-disabled": "ansi_default",
        "border": "ansi_cyan",
        "border-blurred": "ansi_blue",
        "block-cursor-background": "ansi_cyan",
        "block-cursor-foreground": "ansi_black",
        "block-cursor-text-style": "bold",
        "block-cursor-blurred-background": "ansi_blue",
        "block-cursor-blurred-foreground": "ansi_bright_white",
        "block-cursor-blurred-text-style": "none",
        "block-hover-background": "ansi_blue",
        "footer-key-foreground": "ansi_yellow",
        "input-cursor-background": "ansi_bright_white",
        "input-cursor-foreground": "ansi_black",
        "input-cursor-text-style": "none",
        "input-selection-background": "ansi_blue",
        "input-selection-foreground": "ansi_bright_white",
        "scrollbar": "ansi_blue",
        "scrollbar-hover": "ansi_cyan",
        "scrollbar-active": "ansi_cyan",
        "scrollbar-background": "ansi_default",
        "scrollbar-background-hover": "ansi_default",
        "scrollbar-background-active": "ansi_default",
        "scrollbar-corner-color": "ansi_default",
        "screen-selection-background": "ansi_blue",
        "screen-selection-foreground": "ansi_bright_white",
    },
)

THEMES: tuple[Theme, ...] = (DARK, LIGHT, HIGH_CONTRAST, ANSI)
THEME_NAMES: tuple[str, ...] = tuple(t.name for t in THEMES)
DEFAULT_THEME = DARK.name
SIXTEEN_COLOUR_THEME = ANSI.name
CSS_PATH = Path(__file__).with_name("themes.tcss")

__all__ = [
    "ANSI",
    "CSS_PATH",
    "DARK",
    "DEFAULT_THEME",
    "HIGH_CONTRAST",
    "LIGHT",
    "SIXTEEN_COLOUR_THEME",
    "THEMES",
    "THEME_NAMES",
]

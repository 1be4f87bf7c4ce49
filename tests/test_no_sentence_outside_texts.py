"""No sentence a person reads in the chat is written outside bot/texts.py: every text, caption,
button label and command description handed to Telegram comes from a ``Texts`` object, so it is in
the catalogues and in the person's language. Read from the source (the AST), so a new literal fails."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The chat's side: handlers and the bot modules that send. Not the CLI (the engineer's, in English),
# the Bot API stand-in (it plays Telegram) or the demo's narration.
SOURCES = sorted([*ROOT.glob("handlers/*.py"), *(p for p in (ROOT / "bot").rglob("*.py") if "standins" not in p.parts)])
NOT_CHAT = {"texts.py", "texts_plans.py", "texts_portfolio.py", "texts_dashboard.py", "cli.py", "cli_texts.py", "demo.py", "logs.py", "config.py", "i18n.py"}
SINKS = {"reply", "reply_qr", "tell", "_refuse", "send_text", "_tell_once", "send_message", "send_photo",
         "send_document", "edit_message_text", "answer", "InlineKeyboardButton", "KeyboardButton", "BotCommand", "set_my_commands"}
NOT_WORDS = {"callback_data", "parse_mode", "filename", "mime_type", "url", "name"}


def _name(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def _is_words(node: ast.AST) -> bool:
    """A sentence written in place: a string with a letter in it, or an f-string."""
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.BinOp):
        return _is_words(node.left) or _is_words(node.right)
    return isinstance(node, ast.Constant) and isinstance(node.value, str) and any(c.isalpha() for c in node.value)


def written_in_place(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.Call):
            continue
        name = _name(node)
        values: list[ast.AST] = []
        if name in SINKS:
            values = [*node.args, *(k.value for k in node.keywords if k.arg not in NOT_WORDS)]
        elif name == "buttons":  # buttons([[(label, data), ...]]): the labels
            values = [item.elts[0] for item in ast.walk(node) if isinstance(item, ast.Tuple) and item.elts]
        found += [f"{path.parent.name}/{path.name}:{value.lineno}: {ast.unparse(value)[:60]}"
                  for value in values if _is_words(value)]
    return found


def test_every_sentence_sent_comes_from_the_texts() -> None:
    checked = [path for path in SOURCES if path.name not in NOT_CHAT]
    assert len(checked) > 15
    problems = [problem for path in checked for problem in written_in_place(path)]
    assert problems == []


def test_the_check_sees_a_sentence_written_in_place(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    code = ('async def f(update, context, chat_id, t):\n'
            '    await reply(update, context, "Done!")\n'
            '    await context.bot.send_message(chat_id, f"{t} days")\n'
            '    await reply(update, context, t.cancelled, buttons([[("Yes", "ok:yes"), (t.cancel, "ok:no")]]))\n')
    sample.write_text(code)
    assert [line.split(":")[1] for line in written_in_place(sample)] == ["2", "3", "4"]

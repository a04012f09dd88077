"""Usage errors that say what to do: an option of ``tracos-sync`` itself given after the
command (``tracos-sync run --integrations FILE``) is shown where it goes."""

from __future__ import annotations

import click


class HintingCommand(click.Command):
    """A command whose unknown options are looked up among its group's."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        given = list(args)  # the parser consumes the list it is given
        try:
            return super().parse_args(ctx, args)
        except click.NoSuchOption as exc:
            hint = _before_the_command(ctx, exc.option_name, given)
            if hint is None:
                raise
            raise click.UsageError(hint, ctx) from exc


class HintingGroup(click.Group):
    """The group whose commands (``@group.command``) give that hint."""

    command_class = HintingCommand


def _before_the_command(ctx: click.Context, name: str, args: list[str]) -> str | None:
    """The hint for ``name`` when it is one of the group's options, with the command line
    corrected; None otherwise."""
    group = ctx.parent
    if group is None:
        return None
    option = next(
        (
            param
            for param in group.command.params
            if isinstance(param, click.Option) and name in (*param.opts, *param.secondary_opts)
        ),
        None,
    )
    if option is None:
        return None
    moved, rest = _take(args, name, takes_value=not option.is_flag and option.nargs > 0)
    corrected = " ".join([group.info_name or "tracos-sync", *moved, ctx.info_name or "", *rest])
    return (
        f"{name} is an option of {group.info_name} itself, not of {ctx.info_name}: it goes "
        f"before the command, as in\n\n    {corrected}\n"
    )


def _take(args: list[str], name: str, *, takes_value: bool) -> tuple[list[str], list[str]]:
    """``args`` split into the option (with its value) and the rest, in order."""
    moved: list[str] = []
    rest: list[str] = []
    remaining = iter(args)
    for arg in remaining:
        if moved:
            rest.append(arg)
        elif arg == name:
            moved = [arg, next(remaining, "VALUE")] if takes_value else [arg]
        elif arg.startswith(f"{name}="):
            moved = [arg]
        else:
            rest.append(arg)
    return moved, rest

"""``edflow completion bash``: the script completes commands and flags in a real bash."""
import shutil
import subprocess

import pytest

from edcore.cli import SUBCOMMANDS


def complete(script, *words):
    """What bash offers for the last of ``words`` after ``edflow``."""
    words_text = " ".join(f"'{w}'" for w in ("edflow", *words))
    program = f'{script}\nCOMP_WORDS=({words_text}); COMP_CWORD={len(words)}; _edflow; printf "%s\\n" "${{COMPREPLY[@]}}"'
    result = subprocess.run(["bash", "--norc", "--noprofile", "-c", program], capture_output=True, text=True,
                            timeout=30, check=True)
    return sorted(filter(None, result.stdout.splitlines()))


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_bash_completes_commands_and_flags(edflow_project):
    script = edflow_project.run("completion", "bash", timeout=60).assert_success().stdout
    assert complete(script, "") == sorted(SUBCOMMANDS)
    assert complete(script, "ru") == ["runs"]
    assert complete(script, "--disa") == ["--disable-plugin"]
    assert complete(script, "-t", "x.yaml", "--ver") == ["--version"]
    assert complete(script, "plot", "--me") == ["--metric"]
    assert complete(script, "new", "x", "--back") == ["--backend"]
    assert complete(script, "exp") == ["explore"]
    assert complete(script, "explore", "train.yaml", "--sh") == ["--shuffle"]
    assert complete(script, "completion", "b") == ["bash"]
    assert complete(script, "rep") == ["report", "reproduce"]
    assert complete(script, "compare", "logs", "--wh") == ["--where"]
    assert complete(script, "reproduce", "_run", "--st") == ["--steps"]
    edflow_project.write({"train.yaml": "a: 1\n", "notes.txt": "x\n"})
    listed = subprocess.run(["bash", "--norc", "-c", f'{script}\ncd {edflow_project.path}; COMP_WORDS=(edflow -t ""); '
                             f'COMP_CWORD=2; _edflow; printf "%s\\n" "${{COMPREPLY[@]}}"'],
                            capture_output=True, text=True, timeout=30, check=True).stdout.split()
    assert listed == ["train.yaml"]  # -t completes YAML files only


def test_unknown_shell_is_a_usage_error(edflow_project):
    outcome = edflow_project.run("completion", "fish", timeout=60).assert_failed(2)
    assert "invalid choice: 'fish'" in outcome.stderr


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_completion_offers_only_the_documented_flags(edflow_project):
    import argparse

    from edcore.cli import build_parser

    script = edflow_project.run("completion", "bash", timeout=60).assert_success().stdout
    parser = build_parser()
    hidden = {o for a in parser._actions if a.help is argparse.SUPPRESS for o in a.option_strings}
    documented = {o for a in parser._actions if a.help is not argparse.SUPPRESS for o in a.option_strings}
    assert {"--follow-fd", "--progress-position"} <= hidden
    offered = set(complete(script, "-t", "x.yaml", "-"))
    assert offered == documented and not offered & hidden
    assert complete(script, "--fo") == [] and complete(script, "--pro") == ["--profile-hooks", "--project"]
    help_text = edflow_project.run("--help", timeout=60).assert_success().stdout
    assert all(flag in help_text for flag in offered)

"""Graph loading and validation: both link forms, and every error with its location."""

import textwrap

import pytest

from nfvkit.elements.from_memory import FromMemory
from nfvkit.elements.sink import Sink
from nfvkit.errors import ConfigError, InputFileError
from nfvkit.graph.build import build
from nfvkit.graph.spec import load, load_text


def bindings():
    return {"input": FromMemory.configure("input"), "output": Sink.configure("output")}


def build_text(text: str):
    return build(load_text(textwrap.dedent(text), "g.yaml"), bindings())


def errors_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as err:
        build_text(text)
    return err.value.details()


def test_inline_chain_builds_in_topological_order():
    g = build(load("input -> counter -> check_length -> output"), bindings())
    assert [n.name for n in g.nodes] == ["input", "counter@1", "check_length@2", "output"]
    assert [n.targets for n in g.nodes] == [[1], [2], [3], []]


def test_yaml_graph_with_ports_declarations_and_links():
    g = build_text(
        """
        name: split
        elements:
          t: {type: tee, config: {outputs: 2}}
        graph: |
          input -> t
          t[out0] -> c :: counter -> output   # comment
          t[1] -> discard
        """
    )
    names = [n.name for n in g.nodes]
    assert names[0] == "input" and names[-1] in ("output", "discard@1")
    assert set(names) == {"input", "t", "c", "output", "discard@1"}
    t = g.node("t")
    assert [g.nodes[i].name for i in t.targets] == ["c", "discard@1"]


def test_links_mapping_form():
    g = build_text(
        """
        elements:
          c: {type: counter}
        links:
          - {from: input, to: c}
          - {from: c, port: out, to: output}
        """
    )
    assert [n.name for n in g.nodes] == ["input", "c", "output"]


def test_every_error_is_reported_with_its_line():
    errs = errors_of(
        """
        elements:
          fw: {type: acll}
          cl: {type: check_length, config: {max: 0}}
          q:  {type: queue, config: {capacity: 2, burst: 9}}
          c: {type: counter}
        graph: |
          input -> c -> wan_opt -> output
          c[nope] -> output
        """
    )
    text = "\n".join(errs)
    assert (
        "g.yaml: line 3: elements.fw.type: unknown element type 'acll' (did you mean 'acl'?)"
        in errs
    )
    assert "line 4: elements.cl.config.max" in text
    assert "burst (9) exceeds capacity (2)" in text
    assert "line 8: unknown element type 'wan_opt'" in text
    assert "line 9: 'c' has no output port 'nope' (ports: out)" in text
    assert "not linked" not in text and "reachable" not in text  # no follow-on noise


def test_unlinked_port_unreachable_element_and_double_link():
    errs = "\n".join(
        errors_of(
            """
            elements:
              t: {type: tee}
              lonely: {type: counter}
            graph: |
              input -> t -> output
              t[out0] -> discard
            """
        )
    )
    assert "t[out0] is linked twice: use a tee" in errs
    assert "element 't': output port 'out1' is not linked" in errs
    assert "element 'lonely': is not reachable from input" in errs


def test_cycle_is_rejected():
    errs = "\n".join(
        errors_of(
            """
            elements:
              a: {type: counter}
              t: {type: tee}
            graph: |
              input -> a -> t
              t[out0] -> a
              t[out1] -> output
            """
        )
    )
    assert "has a cycle through a, t" in errs


def test_source_cannot_be_a_target_and_sinks_have_no_outputs():
    errs = "\n".join(errors_of("graph: 'input -> output -> counter'"))
    assert "'output' has no output port 0 (ports: none: it is a sink)" in errs


def test_syntax_errors_in_chains_and_yaml():
    assert "cannot read element reference" in "\n".join(errors_of("graph: 'input -> -> output'"))
    with pytest.raises(ConfigError) as err:
        load_text("elements: [unclosed", "bad.yaml")
    assert "line 1" in str(err.value) and "not valid YAML" in str(err.value)


def test_element_needing_config_cannot_be_anonymous():
    errs = "\n".join(errors_of("graph: 'input -> vlan_push -> output'"))
    assert "element type 'vlan_push' needs a config (vid): declare it" in errs


def test_unknown_top_level_key_and_reserved_name():
    errs = "\n".join(errors_of("grahp: 'input -> output'\nelements: {input: {type: counter}}"))
    assert "grahp" in errs and "Extra inputs are not permitted" in errs


def test_missing_graph_file(tmp_path):
    with pytest.raises(InputFileError, match="no such graph file"):
        load(str(tmp_path / "none.yaml"))


def test_yaml_bomb_is_refused_quickly():
    bomb = "a: &a ['x','x','x','x','x','x','x','x','x']\n" + "".join(
        f"{c}: &{c} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]\n"
        for p, c in zip("abcdefgh", "bcdefghi", strict=False)
    )
    with pytest.raises(ConfigError):
        load_text(bomb, "bomb.yaml")


def test_relative_input_files_resolve_against_the_graph_folder(tmp_path, monkeypatch):
    folder = tmp_path / "svc"
    folder.mkdir()
    (folder / "fw.rules").write_text("allow tcp any -> any 80\n")
    graph = folder / "g.yaml"
    graph.write_text(
        "elements:\n  fw:\n    type: acl\n    config: {rules_file: fw.rules}\n"
        "graph: input -> fw -> output\n"
    )
    monkeypatch.chdir(tmp_path)  # not the graph's folder
    fw = build(load(str(graph)), bindings()).node("fw").element
    assert [r["action"] for r in fw.call_handler("rules")] == ["allow"]

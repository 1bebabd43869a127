"""UI-format workflows (what users drag into ComfyUI) <-> API prompts, using /object_info.

The frontend assigns ``widgets_values`` to a node's widget inputs in the order
/object_info lists them; an INT with a value-control widget (``control_after_generate``,
or, when that is unset, an INT named ``seed``/``noise_seed``, as the frontend decides) carries
one extra value, and an upload combo carries the upload button's value after it.
"""
import json
from pathlib import Path

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
NOTE_TYPES = {"Note", "MarkdownNote"}
MUTED_MODES = {2, 4}  # never / bypass


def is_widget(spec) -> bool:
    typ = spec[0]
    return isinstance(typ, list) or typ in WIDGET_TYPES


def input_specs(info: dict):
    """(name, spec, optional) for each input of a node, in widget order."""
    order = info.get("input_order") or {k: list(v) for k, v in info["input"].items()}
    for section in ("required", "optional"):
        for name in order.get(section, []):
            yield name, info["input"][section][name], section == "optional"


SEED_NAMES = ("seed", "noise_seed")


def has_value_control(name: str, spec) -> bool:
    """Whether the frontend adds a 'control after generate' widget after this INT (its rule:
    the spec's flag, else the input's name)."""
    opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    flag = opts.get("control_after_generate")
    return bool(flag) if flag is not None else (spec[0] == "INT" and name in SEED_NAMES)


def extra_widget_values(name: str, spec) -> int:
    """Values the frontend stores after this widget's own one."""
    opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    return int(has_value_control(name, spec)) + int(bool(opts.get("image_upload")))


def load(path) -> dict:
    return json.loads(Path(path).read_text())


def ui_to_api(workflow: dict, object_info: dict) -> dict:
    """Convert a UI workflow to an API prompt; raises KeyError naming a missing node type."""
    links = {link[0]: link for link in workflow.get("links", [])}
    prompt = {}
    for node in workflow["nodes"]:
        if node["type"] in NOTE_TYPES or node.get("mode", 0) in MUTED_MODES:
            continue
        if node["type"] not in object_info:
            raise KeyError(f"node type {node['type']!r} is not installed")
        linked = {i["name"]: links[i["link"]] for i in node.get("inputs", []) if i.get("link") is not None}
        values = list(node.get("widgets_values") or [])
        inputs = {}
        for name, spec, _optional in input_specs(object_info[node["type"]]):
            if is_widget(spec) and values:
                inputs[name] = values.pop(0)
                del values[:extra_widget_values(name, spec)]
            if name in linked:
                link = linked[name]
                inputs[name] = [str(link[1]), link[2]]
        prompt[str(node["id"])] = {"class_type": node["type"], "inputs": inputs}
    return prompt

"""Author UI-format workflows from short Python specs (workflows/specs/<name>.py).

    wf = UIWorkflow(object_info)
    img = wf.add("LoadImage", image="astronaut.png")
    out = wf.add("RecomposeFaceUndistort", image=img[0], distance_m=0.3)
    wf.add("SaveImage", images=out["image"], filename_prefix="recompose/undistort")

A keyword whose value is ``node[i]`` / ``node["output name"]`` becomes a link; any
other keyword sets a widget. Unset widgets take their /object_info default.
"""
import json

from .workflow import extra_widget_values, has_value_control, input_specs, is_widget

COLUMN_WIDTH = 380
ROW_HEIGHT = 320


class Slot:
    def __init__(self, node: "UINode", index: int):
        self.node = node
        self.index = index


class UINode:
    def __init__(self, wf: "UIWorkflow", node_id: int, type_: str, title: str = None):
        self.wf, self.id, self.type = wf, node_id, type_
        self.info = wf.info[type_]
        self.data = {"id": node_id, "type": type_, "pos": [0, 0], "size": [340, 260], "flags": {},
                     "order": node_id - 1, "mode": 0, "inputs": [], "outputs": [],
                     "properties": {"Node name for S&R": type_}, "widgets_values": []}
        if title:
            self.data["title"] = title
        names = self.info.get("output_name") or self.info["output"]
        for i, (name, typ) in enumerate(zip(names, self.info["output"])):
            self.data["outputs"].append({"name": name, "type": typ, "links": [], "slot_index": i})

    def __getitem__(self, key) -> Slot:
        if isinstance(key, int):
            return Slot(self, key)
        names = [o["name"] for o in self.data["outputs"]]
        if key not in names:
            raise KeyError(f"{self.type} has no output {key!r} (has {names})")
        return Slot(self, names.index(key))


class UIWorkflow:
    def __init__(self, object_info: dict):
        self.info = object_info
        self.nodes: list[UINode] = []
        self.links = []
        self.depth = {}

    def add(self, type_: str, title: str = None, **kwargs) -> UINode:
        if type_ not in self.info:
            raise KeyError(f"node type {type_!r} is not installed")
        node = UINode(self, len(self.nodes) + 1, type_, title)
        specs = list(input_specs(node.info))
        unknown = set(kwargs) - {name for name, _, _ in specs}
        if unknown:
            raise KeyError(f"{type_} has no input(s) {sorted(unknown)}")
        depth = 0
        for name, spec, _optional in specs:
            value = kwargs.get(name)
            if isinstance(value, Slot):
                depth = max(depth, self.depth[value.node.id] + 1)
                self._link(value, node, name, spec)
            if is_widget(spec):
                if value is None or isinstance(value, Slot):
                    value = self._default(spec)
                node.data["widgets_values"].append(value)
                node.data["widgets_values"].extend(self._extras(name, spec))
        self.depth[node.id] = depth
        column = [n for n in self.nodes if self.depth[n.id] == depth]
        node.data["pos"] = [40 + depth * COLUMN_WIDTH, 40 + len(column) * ROW_HEIGHT]
        self.nodes.append(node)
        return node

    @staticmethod
    def _default(spec):
        opts = spec[1] if len(spec) > 1 else {}
        if "default" in opts:
            return opts["default"]
        options = spec[0] if isinstance(spec[0], list) else opts.get("options", [])
        return options[0] if options else None

    @staticmethod
    def _extras(name, spec):
        opts = spec[1] if len(spec) > 1 else {}
        extras = ["fixed"] if has_value_control(name, spec) else []
        if opts.get("image_upload"):
            extras.append("image")
        assert len(extras) == extra_widget_values(name, spec)
        return extras

    def _link(self, src: Slot, dst: UINode, name: str, spec) -> None:
        link_id = len(self.links) + 1
        out = src.node.data["outputs"][src.index]
        typ = out["type"]
        self.links.append([link_id, src.node.id, src.index, dst.id, len(dst.data["inputs"]), typ])
        out["links"].append(link_id)
        entry = {"name": name, "type": spec[0] if isinstance(spec[0], str) else "COMBO", "link": link_id}
        if is_widget(spec):
            entry["widget"] = {"name": name}
        dst.data["inputs"].append(entry)

    def to_json(self) -> dict:
        return {"last_node_id": len(self.nodes), "last_link_id": len(self.links),
                "nodes": [n.data for n in self.nodes], "links": self.links, "groups": [],
                "config": {}, "extra": {}, "version": 0.4}

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=1) + "\n"

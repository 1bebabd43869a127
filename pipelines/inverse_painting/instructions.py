"""Text instruction generators that need no vision-language model: an offline heuristic
that reads regions from the target (colour + position clustering, named and ordered back
to front, as landscape painters block in sky before foreground) and a user-written list."""
import torch
import torch.nn.functional as F

from ..common import InputError

WORK_SIDE = 96  # regions are found on a small copy; masks are scaled back up


def _kmeans(x: torch.Tensor, k: int, iters: int = 20, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    centres = x[torch.randperm(len(x), generator=g)[:k]].clone()
    for _ in range(iters):
        labels = torch.cdist(x, centres).argmin(1)
        for j in range(k):
            if (labels == j).any():
                centres[j] = x[labels == j].mean(0)
    return labels


def _name(rgb: torch.Tensor, y: float) -> str:
    r, g, b = rgb.tolist()
    bright = (r + g + b) / 3
    if y < 0.4 and (b >= r or bright > 0.75):
        return "sky"
    if g > r and g > b:
        return "trees" if y < 0.7 else "grass"
    if b > r and b > g:
        return "water" if y > 0.5 else "mountains"
    if y < 0.55:
        return "background"
    return "foreground"


def segment_regions(target: torch.Tensor, count: int = 5) -> list:
    """[(name, mask [1,1,H,W] 0/1)] ordered back (top) to front (bottom); names unique."""
    if target.ndim != 4 or target.shape[1] != 3:
        raise InputError(f"Expected an RGB target [1,3,H,W], got {tuple(target.shape)}.")
    h, w = target.shape[-2:]
    scale = WORK_SIDE / max(h, w)
    small = F.interpolate(target[:1].float(), size=(max(4, round(h * scale)), max(4, round(w * scale))),
                          mode="area")
    sh, sw = small.shape[-2:]
    ys = torch.linspace(0, 1, sh).view(sh, 1).expand(sh, sw)
    xs = torch.linspace(0, 1, sw).view(1, sw).expand(sh, sw)
    feats = torch.cat([small[0].permute(1, 2, 0).reshape(-1, 3), 0.6 * ys.reshape(-1, 1), 0.2 * xs.reshape(-1, 1)], 1)
    labels = _kmeans(feats, min(count, len(feats))).view(1, 1, sh, sw).float()
    regions, used = [], {}
    for j in labels.unique():
        m = (labels == j).float()
        mean_y = float((ys * m[0, 0]).sum() / m.sum())
        colour = (small * m).sum((0, 2, 3)) / m.sum()
        regions.append((mean_y, _name(colour, mean_y), m))
    out = []
    for _, name, m in sorted(regions, key=lambda r: r[0]):
        used[name] = used.get(name, 0) + 1
        label = name if used[name] == 1 else f"{name} {used[name]}"
        out.append((label, (F.interpolate(m, size=(h, w), mode="nearest") > 0.5).float()))
    return out


class HeuristicInstructions:
    """Back-to-front regions, visited ``passes`` times each (coarse, then finer), then "details"."""

    name = "offline heuristic instructions (colour/position regions, back to front)"

    def __init__(self, regions: int = 5, passes: int = 3):
        self.count, self.passes = regions, passes
        self.regions = []

    def begin(self, target: torch.Tensor) -> None:
        self.regions = segment_regions(target, self.count)

    def next(self, canvas: torch.Tensor, target: torch.Tensor, step: int) -> str:
        if not self.regions:
            self.begin(target)
        if step < self.passes * len(self.regions):
            return self.regions[step % len(self.regions)][0]
        return "details"


class UserInstructions:
    """The user's own list, one instruction per line; the last one repeats."""

    name = "user-written instructions"

    def __init__(self, text: str):
        self.lines = [line.strip() for line in text.splitlines() if line.strip()]
        if not self.lines:
            raise InputError("The instruction list is empty; write one instruction per line (e.g. 'sky').")

    def next(self, canvas: torch.Tensor, target: torch.Tensor, step: int) -> str:
        return self.lines[min(step, len(self.lines) - 1)]

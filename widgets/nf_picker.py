"""Which NF to explore: a sample from ``sample_nfs/`` or any path, plus NAME=VALUE defines."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import ipywidgets
import traitlets

from explorer.commands.options import parse_defines as parse_command_line_defines
from explorer.errors import ConfigError

SAMPLES_DIR = Path(__file__).resolve().parent.parent / "sample_nfs"


def sample_nfs(folder: Path = SAMPLES_DIR) -> list[str]:
    """The sample NFs' paths, sorted."""
    return sorted(str(p) for p in Path(folder).glob("*.c"))


def parse_defines(text: str) -> dict[str, str]:
    """``"CAPACITY=1024, DEBUG"`` (spaces or commas between items) -> ``{"CAPACITY": "1024", "DEBUG": "1"}``,
    read as ``nfx --define`` reads each item."""
    return dict(sorted(parse_command_line_defines(text.replace(",", " ").split()).items()))


class NfPicker(ipywidgets.HBox):
    """``path`` and ``defines`` change only when the user presses Load (analysis is not free)."""

    path = traitlets.Unicode("")
    defines = traitlets.Dict()

    def __init__(self, path: str = "", samples_dir: Path = SAMPLES_DIR, **kwargs: Any) -> None:
        self.path_box = ipywidgets.Combobox(value=path, options=sample_nfs(samples_dir), ensure_option=False,
                                            description="NF", placeholder="sample_nfs/fw.c or any path",
                                            style={"description_width": "30px"},
                                            layout=ipywidgets.Layout(width="400px"))
        self.defines_box = ipywidgets.Text(value="", description="Defines", placeholder="NAME=VALUE ...",
                                           style={"description_width": "60px"},
                                           layout=ipywidgets.Layout(width="260px"))
        self.button = ipywidgets.Button(description="Load", button_style="primary",
                                        tooltip="analyse this NF (every result below is then for it)")
        super().__init__([self.path_box, self.defines_box, self.button], **kwargs)
        self.add_class("nfx-picker")
        self.path = path
        # Enter in either box presses Load, as a form would (typing a path, then Enter, did nothing).
        # The browser sends a "submit" message; ``on_submit`` is deprecated, so it is read here.
        for box in (self.path_box, self.defines_box):
            box.on_msg(self._on_box_message)

    def _on_box_message(self, _box: Any, content: Any, _buffers: Any) -> None:
        if isinstance(content, dict) and content.get("event") == "submit" and not self.button.disabled:
            self.button.click()

    def defines_now(self) -> dict[str, str]:
        """The defines the box holds now (ConfigError when malformed), committed or not."""
        return parse_defines(self.defines_box.value)

    def commit(self) -> tuple[str, dict[str, str]]:
        """Take the boxes' contents as the NF to explore and return them (path, defines);
        ConfigError when there is no path or the defines are malformed."""
        defines = parse_defines(self.defines_box.value)
        path = self.path_box.value.strip()
        if not path:
            raise ConfigError("no NF chosen: pick a sample or type the path of a C file")
        with self.hold_trait_notifications():
            self.path, self.defines = path, defines
        return path, defines

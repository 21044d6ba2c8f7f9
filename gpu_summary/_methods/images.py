"""Images: one, or a batch under one tag."""

from __future__ import annotations

from gpu_summary._core import arguments
from gpu_summary._writer import images
from gpu_summary._writer.state import WriterState


class ImageMethods:
    """The image methods of :class:`gpu_summary.SummaryWriter`."""

    _state: WriterState

    def add_image(
        self,
        tag: str,
        img_tensor: object,
        global_step: int | None = None,
        walltime: float | None = None,
        dataformats: str = "CHW",
        *,
        max_size: int | None = None,
        step: int | None = None,
    ) -> None:
        """Log one image, as torch's writer writes it: a ``Summary.Image`` under ``tag``, gray
        repeated into RGB, floats scaled as torch scales them.

        Args:
            tag: series name.
            img_tensor: uint8 (0..255), float (0..1: as float32 × 255, clipped and truncated,
                as torch's; NaN → 0) or bool array, with 1 (gray), 3 (RGB) or 4 (RGBA)
                channels.
            global_step: global step; None: 0 (with ``count_steps``, this tag's last + 1).
            dataformats: ``"CHW"`` (default, as torch's), ``"HWC"`` or ``"HW"`` (gray).
            max_size: a longer side shrunk to this by area averaging on the backend (on the
                host an image of billions of pixels a few rows at a time).
            walltime: seconds since the epoch; default now.

        Raises:
            TypeError: not uint8, float or bool; a masked array. ValueError: dimensions,
                channels or ``dataformats`` that do not match; more than 2 GiB of pixels
                after ``max_size`` (one record's limit: pass a smaller ``max_size``).
        """
        global_step = arguments.either_step(global_step, step)
        images.log_images(self._state, tag, img_tensor, global_step, dataformats, max_size,
                          walltime, layout=None)  # fmt: skip

    def add_images(
        self,
        tag: str,
        img_tensor: object,
        global_step: int | None = None,
        walltime: float | None = None,
        dataformats: str = "NCHW",
        *,
        max_size: int | None = None,
        layout: str = "grid",
        one_tag: bool = False,
        step: int | None = None,
    ) -> None:
        """Log a batch of images at one step: by default one image under ``tag``, the batch
        tiled as torch's writer tiles it.

        ``layout="grid"`` (torch's): row-major on a grid of min(N, 8) columns, no padding,
        empty cells black; gray repeated into RGB and floats scaled as :meth:`add_image`
        (torch's pixels exactly; RGBA, which torch refuses, tiled alike). ``"samples"``:
        sample i a ``Summary.Image`` tagged ``<tag>/image/<i>`` (TensorFlow 1's names; a card
        each; gray stays one channel, floats ``floor(clip(x, 0, 1) * 255 + 0.5)``).
        ``"tensor"``: the samples as one tensor of PNGs under ``tag`` (TensorBoard 2's form:
        one card; ``EventAccumulator.Tensors`` reads it, ``Images`` and tbparse's ``images``
        do not), gray and floats as ``"samples"``.

        Args:
            tag: series name.
            img_tensor: a batch as in :meth:`add_image`, with a leading sample axis.
            global_step: global step; None: 0 (with ``count_steps``, this tag's last + 1).
            dataformats: ``"NCHW"`` (default, as torch's), ``"NHWC"`` or ``"NHW"`` (gray).
            max_size: as in :meth:`add_image`, each sample shrunk before the grid is tiled;
                with it, the batch is never copied whole.
            layout: ``"grid"``, ``"samples"`` or ``"tensor"``, as above.
            one_tag: True is ``layout="tensor"`` (its older spelling).
            walltime: seconds since the epoch; default now.

        Raises:
            As :meth:`add_image`; ValueError: an unknown ``layout``, or ``one_tag=True`` with
                ``layout="samples"``.
        """
        global_step = arguments.either_step(global_step, step)
        layout = images.check_layout(layout, one_tag)
        images.log_images(self._state, tag, img_tensor, global_step, dataformats, max_size,
                          walltime, layout=layout)  # fmt: skip

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
        """Log one image.

        Args:
            tag: series name.
            img_tensor: uint8 (0..255), float (0..1, clipped; NaN → 0) or bool array, with 1
                (gray), 3 (RGB) or 4 (RGBA) channels.
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
                          walltime, batch=False)  # fmt: skip

    def add_images(
        self,
        tag: str,
        img_tensor: object,
        global_step: int | None = None,
        walltime: float | None = None,
        dataformats: str = "NCHW",
        *,
        max_size: int | None = None,
        one_tag: bool = False,
        step: int | None = None,
    ) -> None:
        """Log a batch of images at one step, each sample its own image.

        Sample i is tagged ``<tag>/image/<i>`` (TensorFlow 1's names), a ``Summary.Image``
        that ``EventAccumulator.Images`` and tbparse read and TensorBoard shows as a card of
        its own; all in one event. (torch tiles the batch into one grid image under ``tag``.)

        Args:
            tag: series name.
            img_tensor: a batch as in :meth:`add_image`, with a leading sample axis.
            global_step: global step; None: 0 (with ``count_steps``, this tag's last + 1).
            dataformats: ``"NCHW"`` (default, as torch's), ``"NHWC"`` or ``"NHW"`` (gray).
            max_size: as in :meth:`add_image`; with it, the batch is never copied whole.
            one_tag: write the batch as one tensor of PNGs under ``tag`` instead (TensorBoard
                2's form: the samples of one card; ``EventAccumulator.Tensors`` reads it,
                ``Images`` and tbparse's ``images`` do not).
            walltime: seconds since the epoch; default now.
        """
        global_step = arguments.either_step(global_step, step)
        if not isinstance(one_tag, bool):
            raise TypeError(f"one_tag must be True or False, got {one_tag!r}")
        images.log_images(self._state, tag, img_tensor, global_step, dataformats, max_size,
                          walltime, batch=True, one_tag=one_tag)  # fmt: skip

"""Video, audio, images with boxes and matplotlib figures."""

from __future__ import annotations

from gpu_summary._core import arguments
from gpu_summary._writer import media
from gpu_summary._writer.state import WriterState


class MediaMethods:
    """The video, audio, boxes and figure methods of :class:`gpu_summary.SummaryWriter`."""

    _state: WriterState

    def add_video(
        self,
        tag: str,
        vid_tensor: object,
        global_step: int | None = None,
        fps: float = 4,
        walltime: float | None = None,
        dataformats: str = "NTCHW",
        *,
        max_size: int | None = None,
        step: int | None = None,
    ) -> None:
        """Log videos as one animated GIF (the Images dashboard plays it).

        Args:
            tag: series name.
            vid_tensor: N videos of T frames: uint8 (0..255), float (0..1, clipped; NaN → 0)
                or bool, 1, 3 or 4 channels. Several videos are tiled on a near-square grid
                (ceil(sqrt(N)) columns), frame by frame.
            global_step: global step; None: 0 (with ``count_steps``, this tag's last + 1).
            fps: frames per second (GIF keeps delays in 1/100 s).
            walltime: seconds since the epoch; default now.
            dataformats: ``"NTCHW"`` (default, as torch's), ``"NTHWC"``, ``"TCHW"``, ``"THWC"``.
            max_size: each frame's longer side shrunk to this on the tensor's backend (the
                thumbnail kernel on a device: only the small frames are copied back).

        Needs no moviepy: the GIF is written by Pillow (256 colours a frame).

        Raises:
            TypeError/ValueError: wrong dtype, dimensions, channels; ``fps`` not > 0; frames
                of more than 2 GiB (after ``max_size``: one record's limit).
        """
        global_step = arguments.either_step(global_step, step)
        media.log_video(self._state, tag, vid_tensor, global_step, fps, walltime, dataformats,
                        max_size)  # fmt: skip

    def add_audio(
        self,
        tag: str,
        snd_tensor: object,
        global_step: int | None = None,
        sample_rate: int = 44100,
        walltime: float | None = None,
        *,
        step: int | None = None,
    ) -> None:
        """Log sound as mono 16-bit WAV (the Audio dashboard plays it).

        Args:
            tag: series name.
            snd_tensor: one clip of samples in [-1, 1] (shape (L,), (1, L) or any shape with
                one axis longer than 1), or a batch (n, L): clip i is ``<tag>/audio/<i>``.
                Values are clipped to [-1, 1] (NaN → 0), scaled by 32767, truncated; int16
                data is taken as PCM samples as they are.
            global_step: global step; None: 0 (with ``count_steps``, this tag's last + 1).
            sample_rate: samples per second, a whole number of Hz.
            walltime: seconds since the epoch; default now.

        A device tensor is copied back asynchronously; the WAV is made on the writer thread.
        Clips of more than 2 GiB of 16-bit samples in all (one record's limit) are a
        ValueError at the call.
        """
        global_step = arguments.either_step(global_step, step)
        media.log_audio(self._state, tag, snd_tensor, global_step, sample_rate, walltime)

    def add_image_with_boxes(
        self,
        tag: str,
        img_tensor: object,
        box_tensor: object,
        global_step: int | None = None,
        walltime: float | None = None,
        rescale: float = 1,
        dataformats: str = "CHW",
        labels: list[str] | None = None,
        *,
        step: int | None = None,
    ) -> None:
        """Log an image with boxes (and labels) drawn on it.

        Args:
            tag: series name.
            img_tensor: one image, as in :meth:`add_image`.
            box_tensor: N×4 boxes (x1, y1, x2, y2) in pixels, drawn red, 2 px wide; a box
                partly outside the image is clipped, one wholly outside is an error.
            global_step: global step; None: 0 (with ``count_steps``, this tag's last + 1).
            walltime: seconds since the epoch; default now.
            rescale: the drawn image scaled by this factor (torch's). A str here is taken as
                ``dataformats`` (tensorboardX's position of it).
            dataformats: ``"CHW"`` (default), ``"HWC"`` or ``"HW"``.
            labels: one str per box (or one str for one box), drawn above its corner.

        Raises:
            ValueError: boxes not N×4 (at most 2**20 of them), not finite, x2 < x1 or y2 < y1,
                wholly outside; labels not one per box. TypeError: labels not str. (Device
                boxes are checked on the writer thread: a bad one skips the image with a
                RuntimeWarning.)
        """
        global_step = arguments.either_step(global_step, step)
        media.log_image_with_boxes(self._state, tag, img_tensor, box_tensor, global_step,
                                   walltime, rescale, dataformats, labels)  # fmt: skip

    def add_figure(
        self,
        tag: str,
        figure: object,
        global_step: int | None = None,
        close: bool = True,
        walltime: float | None = None,
        *,
        layout: str = "grid",
        step: int | None = None,
    ) -> None:
        """Log a matplotlib figure (or a list of them) as an image.

        Args:
            tag: series name.
            figure: a ``matplotlib.figure.Figure`` or a list of them; rendered by Agg at the
                call (matplotlib is imported only by the caller). A list is one image under
                ``tag``, the figures tiled as :meth:`add_images` tiles a batch (torch's).
            global_step: global step; None: 0 (with ``count_steps``, this tag's last + 1).
            close: close the figures once rendered (``pyplot.close``).
            layout: ``"grid"`` (torch's), or ``"samples"``: a list's figure i an image of its
                own, ``<tag>/image/<i>`` (figures of different sizes need it).
            walltime: seconds since the epoch; default now.

        Raises:
            TypeError: not a Figure. ValueError: an empty list; a grid of figures of
                different sizes; an unknown ``layout``.
        """
        global_step = arguments.either_step(global_step, step)
        media.log_figure(self._state, tag, figure, global_step, close, walltime, layout)

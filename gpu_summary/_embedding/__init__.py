"""The Projector's files: ``add_embedding``'s argument checks (``arguments``), the on-disk
format TensorBoard's projector plugin reads (``projector_format``) and the run folder's
config and assets, written safely across threads and processes (``files``)."""

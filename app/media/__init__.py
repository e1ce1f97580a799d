"""Media: the project/timeline model, .mcproj files, image and video reading, export.

No torch and no Qt widgets here, so everything runs and is tested headless. Modules (import what
you need; nothing is imported eagerly, so opening a project does not load PyAV or NumPy):

  errors        MediaError, ProjectError, ExportError, ExportCancelled
  probe         load_image (max_side= for a bounded decode), load_preview (display pictures, from a
                worker thread), probe_video, read_video_frames, read_frame, iter_video_frames, thumbnail,
                media_kind, sniff, MediaLimits
  project       Project, MediaItem, Clip, Version, ProjectSettings, invert (change records)
  project_file  save_project, open_project, import_media, store_result, media_dir, media_path,
                autosave_path, write_recovery, find_recoveries, load_recovery, clear_recovery,
                clean_project_temps
  schema        check_project_dict: the one type/bounds check of a project's JSON (open and save)
  files         open_regular, read_regular: reading only regular files (a pipe or device never hangs us)
  export        export_image, export_video, export_timeline, timeline_frames
  render        render_project: open a project file and render its video track (scripts; `render` opens first to say what it leaves out)
  atomic        crash-safe file writing used by all of the above; the overwrite rule; stale temp cleanup

The bundled sample media (resources/samples) are drawn by the shapes world, app/shapes/samples.py,
which writes them with `export` here.
"""

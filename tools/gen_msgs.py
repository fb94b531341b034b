"""Generate and compile the package's ROS 2 messages with the rosidl generators of the ROS wheels.

No ROS install is needed: the ``ros-*`` wheels ship the generators (C, C typesupport,
introspection, Fast DDS, Python), headers and libraries. This script drives them directly and
compiles the output with gcc/g++, producing the layout ament_cmake would install:

    <py_out>/mots_ros/msg/                       generated Python message classes
    <py_out>/mots_ros/lib*__rosidl_*.so          message libraries (C, typesupports, Python glue)
    <py_out>/mots_ros/mots_ros_s__rosidl_*.so    the CPython extension modules

Every library carries RUNPATH $ORIGIN and the typesupport_c library is linked against the Fast DDS
and introspection typesupports, so the typesupport dispatcher's dlopen() by bare name finds them
already loaded: no LD_LIBRARY_PATH is needed at run time, wherever the package is installed.

Usage: python tools/gen_msgs.py --msg-dir msg --build build/rosidl --py-out .
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

PACKAGE = "mots_ros"
DEPENDENCIES = ("std_msgs", "sensor_msgs", "builtin_interfaces")


def find_ros_prefix() -> Path:
    """The prefix holding the wheels' include/, lib/ and share/ (a venv, or pip's build overlay)."""
    import rosidl_generator_c

    site_packages = Path(rosidl_generator_c.__file__).resolve().parents[1]
    for prefix in (site_packages.parents[2], Path(sys.prefix)):
        if (prefix / "share" / "rosidl_generator_c").is_dir():
            return prefix
    raise RuntimeError(f"cannot find the ROS wheels' share/ folder near {site_packages}")


def generate(msg_dir: Path, build: Path, prefix: Path) -> dict[str, Path]:
    """Runs every generator; returns the output root of each kind."""
    os.environ["AMENT_PREFIX_PATH"] = str(prefix)  # the generators find their templates through it
    from rosidl_cli.command.hash.api import generate_type_hashes
    from rosidl_cli.command.translate.api import translate
    from rosidl_generator_c.cli import GenerateC
    from rosidl_generator_py.cli import GeneratePython
    from rosidl_typesupport_c.cli import GenerateCTypesupport
    from rosidl_typesupport_fastrtps_c.cli import GenerateFastRTPSCTypesupport
    from rosidl_typesupport_introspection_c.cli import GenerateIntrospectionCTypesupport

    msg_root = msg_dir.resolve().parent
    messages = [f"{msg_root}:msg/{p.name}" for p in sorted(msg_dir.glob("*.msg"))]
    include_paths = [str(prefix / "share" / dep) for dep in DEPENDENCIES]
    idl_files = translate(
        package_name=PACKAGE, interface_files=messages, include_paths=include_paths,
        output_format="idl", output_path=build / "idl",
    )
    type_descriptions = generate_type_hashes(
        package_name=PACKAGE, interface_files=idl_files, include_paths=include_paths,
        output_path=build / "type_description",
    )
    roots = {kind: build / "gen" / kind for kind in ("c", "typesupport_c", "introspection_c", "fastrtps_c", "py")}
    GenerateC("c").generate(PACKAGE, idl_files, include_paths, roots["c"] / PACKAGE,
                            type_description_files=type_descriptions)
    GenerateCTypesupport("c", typesupport_implementations=["rosidl_typesupport_fastrtps_c", "rosidl_typesupport_introspection_c"]).generate(
        PACKAGE, idl_files, include_paths, roots["typesupport_c"] / PACKAGE)
    GenerateIntrospectionCTypesupport("introspection_c").generate(PACKAGE, idl_files, include_paths, roots["introspection_c"] / PACKAGE)
    GenerateFastRTPSCTypesupport("fastrtps_c").generate(PACKAGE, idl_files, include_paths, roots["fastrtps_c"] / PACKAGE)
    GeneratePython("py", typesupport_implementations=["rosidl_typesupport_c", "rosidl_typesupport_fastrtps_c", "rosidl_typesupport_introspection_c"]).generate(
        PACKAGE, idl_files, include_paths, roots["py"] / PACKAGE)
    share = build / "share" / PACKAGE / "msg"
    share.mkdir(parents=True, exist_ok=True)
    for path in msg_dir.glob("*.msg"):
        shutil.copy(path, share)
    for path in (build / "idl" / "msg").glob("*.idl"):
        shutil.copy(path, share)
    for path in (build / "type_description" / "msg").glob("*.json"):
        shutil.copy(path, share)
    return roots


def _compile(compiler: str, flags: list[str], sources: list[Path], objects_dir: Path, includes: list[str]) -> list[Path]:
    objects_dir.mkdir(parents=True, exist_ok=True)

    def one(source: Path) -> Path:
        target = objects_dir / (source.name + ".o")
        subprocess.run([compiler, *flags, "-fPIC", "-O2", "-c", str(source), "-o", str(target), *includes], check=True)
        return target

    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(one, sources))


def _link(compiler: str, objects: list[Path], output: Path, libs: list[str], lib_dir: Path, *, strict: bool, extra=()) -> None:
    flags = ["-shared", "-Wl,-rpath,$ORIGIN", f"-Wl,-soname,{output.name}", f"-L{lib_dir}", f"-L{output.parent}",
             f"-Wl,-rpath-link,{lib_dir}"]
    if strict:
        flags.append("-Wl,--no-undefined")
    subprocess.run([compiler, *flags, *map(str, objects), *extra, *[f"-l{lib}" for lib in libs], "-o", str(output)], check=True)


def compile_all(roots: dict[str, Path], build: Path, prefix: Path, out: Path) -> None:
    """Compiles and links the generated sources into ``out`` (the package folder)."""
    import numpy

    out.mkdir(parents=True, exist_ok=True)
    include_root = prefix / "include"
    includes = [f"-I{root}" for root in roots.values()]
    includes += [f"-I{d}" for d in sorted(include_root.iterdir()) if d.is_dir()] + [f"-I{include_root}"]
    includes += [f"-I{sysconfig.get_paths()['include']}", f"-I{numpy.get_include()}"]
    lib_dir = prefix / "lib"
    objects = build / "obj"
    dep_libs = lambda suffix: [f"{dep}__{suffix}" for dep in DEPENDENCIES]  # noqa: E731

    def sources(kind: str, pattern: str) -> list[Path]:
        return sorted((roots[kind] / PACKAGE).rglob(pattern))

    generator_c = out / f"lib{PACKAGE}__rosidl_generator_c.so"
    _link("gcc", _compile("gcc", ["-std=c11"], sources("c", "*.c"), objects / "c", includes), generator_c,
          ["rosidl_runtime_c", "rcutils", *dep_libs("rosidl_generator_c")], lib_dir, strict=True)

    introspection = out / f"lib{PACKAGE}__rosidl_typesupport_introspection_c.so"
    _link("gcc", _compile("gcc", ["-std=c11"], sources("introspection_c", "*.c"), objects / "introspection_c", includes),
          introspection, [f"{PACKAGE}__rosidl_generator_c", "rosidl_typesupport_introspection_c", "rosidl_runtime_c",
                          *dep_libs("rosidl_typesupport_introspection_c"), *dep_libs("rosidl_generator_c")], lib_dir, strict=True)

    fastrtps = out / f"lib{PACKAGE}__rosidl_typesupport_fastrtps_c.so"
    _link("g++", _compile("g++", ["-std=c++17"], sources("fastrtps_c", "*.cpp"), objects / "fastrtps_c", includes),
          fastrtps, [f"{PACKAGE}__rosidl_generator_c", "rosidl_typesupport_fastrtps_c", "rosidl_typesupport_fastrtps_cpp",
                     "rosidl_runtime_c", "rosidl_dynamic_typesupport", "fastcdr", "rmw", "rcutils",
                     *dep_libs("rosidl_typesupport_fastrtps_c"), *dep_libs("rosidl_generator_c")], lib_dir, strict=True)

    typesupport_c = out / f"lib{PACKAGE}__rosidl_typesupport_c.so"
    # --no-as-needed: keep the two typesupports as DT_NEEDED so the dispatcher's dlopen() finds them loaded.
    _link("g++", _compile("g++", ["-std=c++17"], sources("typesupport_c", "*.cpp"), objects / "typesupport_c", includes),
          typesupport_c, [f"{PACKAGE}__rosidl_generator_c", "rosidl_typesupport_c", "rosidl_runtime_c", "rcutils",
                          "rcpputils", *dep_libs("rosidl_typesupport_c")], lib_dir, strict=True,
          extra=["-Wl,--no-as-needed", f"-l{PACKAGE}__rosidl_typesupport_fastrtps_c",
                 f"-l{PACKAGE}__rosidl_typesupport_introspection_c", "-Wl,--as-needed"])

    # Python glue: symbols of the interpreter resolve at import time, so no --no-undefined here.
    py_dir = roots["py"] / PACKAGE
    glue_sources = sorted((py_dir / "msg").glob("*_s.c"))
    generator_py = out / f"lib{PACKAGE}__rosidl_generator_py.so"
    _link("gcc", _compile("gcc", ["-std=c11"], glue_sources, objects / "py", includes), generator_py,
          [f"{PACKAGE}__rosidl_generator_c", "rosidl_runtime_c", *dep_libs("rosidl_generator_py"), *dep_libs("rosidl_generator_c")],
          lib_dir, strict=False)
    for typesupport in ("rosidl_typesupport_c", "rosidl_typesupport_fastrtps_c", "rosidl_typesupport_introspection_c"):
        source = py_dir / f"_{PACKAGE}_s.ep.{typesupport}.c"
        module = out / f"{PACKAGE}_s__{typesupport}.so"
        _link("gcc", _compile("gcc", ["-std=c11"], [source], objects / f"ext_{typesupport}", includes), module,
              [f"{PACKAGE}__rosidl_generator_py", f"{PACKAGE}__{typesupport}", f"{PACKAGE}__rosidl_generator_c",
               "rosidl_runtime_c", typesupport], lib_dir, strict=False)

    target_msg = out / "msg"
    if target_msg.exists():
        shutil.rmtree(target_msg)
    shutil.copytree(py_dir / "msg", target_msg, ignore=shutil.ignore_patterns("*.c", "*.h"))
    init = out / "__init__.py"
    if not init.exists():
        init.write_text("")


def build(msg_dir: str | Path, build_dir: str | Path, py_out: str | Path) -> Path:
    """Generates and compiles the messages; returns the share folder with .msg/.idl/.json files."""
    started = time.perf_counter()
    msg_dir, build_dir, py_out = Path(msg_dir), Path(build_dir).resolve(), Path(py_out).resolve()
    prefix = find_ros_prefix()
    if build_dir.exists():
        shutil.rmtree(build_dir)
    roots = generate(msg_dir, build_dir, prefix)
    generated = time.perf_counter()
    compile_all(roots, build_dir, prefix, py_out / PACKAGE)
    print(f"[gen_msgs] generated in {generated - started:.2f}s, compiled in {time.perf_counter() - generated:.2f}s",
          file=sys.stderr)
    return build_dir / "share" / PACKAGE


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--msg-dir", default="msg")
    parser.add_argument("--build", default="build/rosidl")
    parser.add_argument("--py-out", default=".")
    args = parser.parse_args()
    build(args.msg_dir, args.build, args.py_out)


if __name__ == "__main__":
    main()

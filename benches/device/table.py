"""The device run's results in one JSON and one Markdown table of ratios.

usage: table.py RAW_DIR RESULTS.json TABLE.md DRY_RUN(0|1)

RAW_DIR holds what benches/device/run wrote: parts.tsv (each part's status and seconds) and
each part's JSON (info, kernels, torch_gemm, step_<model>_<order>, jax_<model>_<order>,
theory_step, sine_sweep). A missing part is reported as missing, never guessed.
"""
import json
import os
import sys


def load(raw, name):
    path = os.path.join(raw, name + ".json")
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def fmt(x, digits=3):
    return "—" if x is None else f"{x:.{digits}g}"


def ratio(num, den):
    return None if num is None or den in (None, 0) else num / den


def main(raw, results_path, table_path, dry):
    parts = []
    if os.path.exists(os.path.join(raw, "parts.tsv")):
        for line in open(os.path.join(raw, "parts.tsv")):
            name, status, seconds = line.rstrip("\n").split("\t")
            parts.append({"part": name, "status": status, "seconds": int(seconds)})
    names = sorted(f[:-5] for f in os.listdir(raw) if f.endswith(".json"))
    results = {"dry_run": dry, "parts": parts}
    results.update({n: load(raw, n) for n in names})
    with open(results_path, "w") as f:
        json.dump(results, f, indent=1)

    info = results.get("info") or {}
    device = info.get("name", "unknown device")
    md = [f"# hypermod device run: {device}", ""]
    if dry:
        md += ["Dry run (tiny sizes on a CPU adapter): checks the script, not the GPU.", ""]
    md += ["| part | status | s |", "|---|---|---|"]
    md += [f"| {p['part']} | {p['status']} | {p['seconds']} |" for p in parts]

    kernels = results.get("kernels") or {}
    torch = {(r["kernel"], r["shape"]): r for r in (results.get("torch_gemm") or {}).get("records", [])}
    gemms = [r for r in kernels.get("records", []) if r["kernel"].startswith("gemm")]
    if gemms:
        tdev = (results.get("torch_gemm") or {}).get("torch_gpu") or (
            results.get("torch_gemm") or {}).get("torch_device", "—")
        md += ["", f"## GEMM: hypermod vs PyTorch ({tdev})", "",
               "| shape | hypermod ms | GFLOP/s | torch ms | torch / hypermod time |",
               "|---|---|---|---|---|"]
        for r in gemms:
            t = torch.get((r["kernel"], r["shape"]), {})
            md.append(f"| {r['shape']} | {fmt(r['ms'])} | {fmt(r['gflops'])} | "
                      f"{fmt(t.get('torch_ms'))} | {fmt(ratio(t.get('torch_ms'), r['ms']))} |")

    md += ["", "## Outer step (hyperteacher)", "",
           "| student | order | hypermod s/step | dispatches | GFLOP | GPU estimate ms (H100) "
           "| launch share | official JAX s/step | JAX / hypermod time |",
           "|---|---|---|---|---|---|---|---|---|"]
    for model in ["hnet_linear", "hnet_deepmlp", "anil", "maml"]:
        for order in ["first_order", "second_order"]:
            s = results.get(f"step_{model}_{order}")
            j = results.get(f"jax_{model}_{order}")
            if s is None:
                md.append(f"| {model} | {order} | missing | | | | | {fmt(j and j['median_s'])} | |")
                continue
            c = s["cost"]
            est = next((e for e in c["estimates"] if e["model"].startswith("H100")), {})
            md.append(
                f"| {model} | {order} | {fmt(s['median_s'])} | {c['dispatches']} | "
                f"{fmt(c['flops'] / 1e9)} | {fmt(est.get('seconds', 0) * 1e3)} | "
                f"{fmt(est.get('launch_share'))} | {fmt(j and j['median_s'])} | "
                f"{fmt(ratio(j and j['median_s'], s['median_s']))} |")

    th = results.get("theory_step")
    if th:
        md += ["", f"Theory step: {fmt(th['median_s'])} s, {th['cost']['dispatches']} dispatches."]
    sw = results.get("sine_sweep")
    if sw:
        md += ["", f"Sine sweep ({sw['runs']} runs, {sw['method']}): batched "
               f"{fmt(sw['batched_runs_per_s'])} runs/s, one at a time "
               f"{fmt(sw['sequential_runs_per_s'])} runs/s, ratio {fmt(sw['speedup'])}; "
               f"run 1 bit-identical: {sw['identical']}."]
    with open(table_path, "w") as f:
        f.write("\n".join(md) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1")

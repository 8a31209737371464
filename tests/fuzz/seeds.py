#!/usr/bin/env python3
"""Writes the hand-made seeds of the fuzz corpora (tests/fuzz/corpus/<target>/seed_*).

    python3 tests/fuzz/seeds.py          (from the repository root)

Seeds are meaningful inputs for each target: the JOBSPEC.md tutorial job and variants for
every model, data, loss, optimizer and scheduler type; preview bodies for every DeepSpeed and
PyTorch reference schedule in tests/refdata; the builtin CSVs and broken CSVs; one HTTP request (fuzz_http.c's framing) per API.md
route, good and bad; the sweeps and LR finder requests of docs/EXPERIMENTS.md and
tests/e2e, each also nearly valid in one way. Saved optimizer
and scheduler states come from build/fuzz/seed_state (make build/fuzz/seed_state; see seed_state.c). Inputs the
fuzzer found are kept beside them under the hashes libFuzzer names them by."""
import copy
import json
import os

ROOT = "tests/fuzz/corpus"


def put(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, (dict, list)):
        data = json.dumps(data, separators=(",", ":"))
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, "seed_" + name), "wb") as f:
        f.write(data)


TUTORIAL = {
    "name": "warmup-demo", "seed": 42,
    "model": {"type": "linear", "inputs": 10, "outputs": 1},
    "loss": "mean",
    "data": {"type": "synthetic", "task": "regression", "samples": 4096, "features": 10},
    "steps": 1000,
    "checkpoint": {"every_steps": 100, "keep_last": 3},
    "ds_config": {
        "train_batch_size": 8,
        "optimizer": {"type": "Adam", "params": {"lr": 0.01}},
        "scheduler": {"type": "WarmupLR", "params": {"warmup_min_lr": 0.001,
                                                     "warmup_max_lr": 0.01,
                                                     "warmup_num_steps": 100}},
    },
}

OPTIMIZERS = [
    {"type": "Adam", "params": {"lr": 0.001, "betas": [0.9, 0.999], "eps": 1e-8,
                                "weight_decay": 0.01, "adam_w_mode": False}},
    {"type": "adamw", "params": {"lr": 0.001, "torch_adam": True, "amsgrad": True}},
    {"type": "Lamb", "params": {"lr": 0.01, "max_coeff": 5.0, "min_coeff": 0.1}},
    {"type": "Lion", "params": {"lr": 0.0001, "betas": [0.95, 0.98]}},
    {"type": "Adagrad", "params": {"lr": 0.1, "lr_decay": 0.01, "initial_accumulator_value": 0.1}},
    {"type": "SGD", "params": {"lr": 0.1, "momentum": 0.9, "nesterov": True}},
    {"type": "RMSprop", "params": {"lr": 0.01, "alpha": 0.9, "centered": True, "momentum": 0.5}},
    {"type": "OneBitAdam", "params": {"lr": 0.001}},
]


def jobspecs():
    put("jobspec", "tutorial", TUTORIAL)
    put("jobspec", "tutorial_pretty", json.dumps(TUTORIAL, indent=2))
    # Strict JSON (core/jsonstrict.h): lax numbers, NULs and invalid UTF-8 are refused.
    t = json.dumps(TUTORIAL, separators=(",", ":"))
    put("jobspec", "bad_strict_leading_zero", t.replace('"steps":1000', '"steps":01000'))
    put("jobspec", "bad_strict_trailing_point", t.replace('"lr":0.01', '"lr":1.'))
    put("jobspec", "bad_strict_exponent", t.replace('"lr":0.01', '"lr":1e'))
    put("jobspec", "bad_strict_nul", t.replace('"warmup-demo"', '"warm\\u0000up"'))
    put("jobspec", "bad_strict_utf8", t.encode().replace(b'"warmup-demo"', b'"warm\xc0\xafup"'))
    put("jobspec", "strict_unicode_name", t.replace('"warmup-demo"', '"caf\\u00e9 \\ud83d\\ude00"'))
    for i, o in enumerate(OPTIMIZERS):
        j = copy.deepcopy(TUTORIAL)
        j["ds_config"]["optimizer"] = o
        put("jobspec", "optim_%d" % i, j)
    for i, act in enumerate(["relu", "gelu", "tanh", "sigmoid", "silu"]):
        j = copy.deepcopy(TUTORIAL)
        j["model"] = {"type": "mlp", "inputs": 10, "hidden": [16, 8][: 1 + i % 2],
                      "outputs": 1, "activation": act, "dropout": 0.1 * i}
        j["loss"] = "mse"
        put("jobspec", "mlp_%s" % act, j)
    datas = [
        ({"type": "synthetic", "task": "classification", "generator": "blobs", "samples": 300,
          "features": 2, "classes": 3}, "cross_entropy", 2, 3),
        ({"type": "synthetic", "task": "classification", "generator": "spirals", "samples": 200,
          "features": 2, "classes": 2, "noise": 0.1}, "bce", 2, 1),
        ({"type": "synthetic", "task": "classification", "generator": "xor", "samples": 64,
          "features": 2, "classes": 2}, "cross_entropy", 2, 2),
        ({"type": "synthetic", "task": "regression", "samples": 100, "features": 3,
          "outputs": 2, "noise": 0.5}, "mse", 3, 2),
        ({"type": "inline", "x": [[0, 0], [0, 1], [1, 0], [1, 1]], "y": [0, 1, 1, 0]},
         "cross_entropy", 2, 2),
        ({"type": "inline", "x": [[0.5], [1.5], [2.5]], "y": [[1.0], [3.0], [5.0]]}, "mse", 1, 1),
        ({"type": "dataset", "name": "houses", "target": "price", "features": ["a", "b"],
          "normalize": False}, "mse", 2, 1),
        ({"type": "dataset", "id": "ds_000001"}, "mse", 4, 1),
        ({"type": "builtin", "name": "iris"}, "cross_entropy", 4, 3),
        ({"type": "builtin", "name": "digits", "shuffle": False}, "cross_entropy", 64, 10),
        ({"type": "builtin", "name": "wine", "target": "alcohol", "features": ["malic_acid"]},
         "mse", 1, 1),
    ]
    for i, (d, loss, inputs, outputs) in enumerate(datas):
        j = copy.deepcopy(TUTORIAL)
        j["data"] = d
        j["loss"] = loss
        j["model"] = {"type": "linear", "inputs": inputs, "outputs": outputs}
        put("jobspec", "data_%d" % i, j)
    j = copy.deepcopy(TUTORIAL)
    del j["steps"]
    j["epochs"] = 3
    j["validation"] = {"fraction": 0.2, "every_steps": 10}
    j["threads"] = 2
    j["param_groups"] = [{"match": ["*.bias"], "lr": 0.001, "weight_decay": 0.0}]
    j["resume_from"] = {"job": "j_000017", "step": 400}
    j["model"] = {"type": "linear", "inputs": 2, "outputs": 1,
                  "init": {"fc.weight": [[0.1, -0.2]], "fc.bias": [0.0]}}
    j["data"]["features"] = 2
    j["ds_config"].update({"train_micro_batch_size_per_gpu": 4,
                           "gradient_accumulation_steps": 2, "gradient_clipping": 0.5,
                           "fp16": {"enabled": True}, "zero_optimization": {"stage": 2}})
    put("jobspec", "everything", j)
    j = copy.deepcopy(TUTORIAL)
    j["ds_config"] = {"train_batch_size": "auto", "train_micro_batch_size_per_gpu": 8,
                      "gradient_accumulation_steps": "auto",
                      "optimizer": {"type": "AdamW", "params": {"lr": 0.001}},
                      "scheduler": {"type": "WarmupDecayLR",
                                    "params": {"total_num_steps": "auto", "warmup_min_lr": "auto",
                                               "warmup_max_lr": "auto",
                                               "warmup_num_steps": 10}}}
    put("jobspec", "auto", j)
    for name, rec in schedule_blocks():
        j = copy.deepcopy(TUTORIAL)
        j["ds_config"]["scheduler"] = rec["scheduler"]
        lrs = rec["lrs"]
        j["ds_config"]["optimizer"] = {"type": rec["opt"], "params": {"lr": lrs[0]}}
        if len(lrs) > 1:
            j["param_groups"] = [{"match": ["fc.bias" if k == 0 else "nomatch%d" % k],
                                  "lr": lr} for k, lr in enumerate(lrs[1:])]
        put("jobspec", "sched_" + name, j)
    text = json.dumps(TUTORIAL)
    put("jobspec", "bad_trailing_comma", text[:-1] + ",}")
    put("jobspec", "bad_comment", "// a comment\n" + text)
    put("jobspec", "bad_cut", text[: len(text) // 2])
    put("jobspec", "bad_array", "[" + text + "]")
    put("jobspec", "bad_empty", "")
    put("jobspec", "bad_nan", text.replace("0.01}", "NaN}", 1))
    put("jobspec", "bad_huge", text.replace("4096", "1e400"))
    put("jobspec", "bad_unknown_key", text[:-1] + ',"stepz":5}')


def schedule_blocks():
    """(name, {scheduler, lrs, opt, steps}) for every reference schedule."""
    out = []
    idx = json.load(open("tests/refdata/deepspeed-schedules/index.json"))
    for f in idx["files"]:
        out.append((f["name"], {"scheduler": f["scheduler"], "lrs": f["optimizer_lr"],
                                "opt": "Adam", "steps": f.get("steps", 300)}))
    tdir = "tests/refdata/torch-schedules"
    for fn in sorted(os.listdir(tdir)):
        if not fn.endswith(".json") or fn == "index.json":
            continue
        t = json.load(open(os.path.join(tdir, fn)))
        if t.get("scheduler") is None:
            continue
        params = copy.deepcopy(t["constructor_args"])
        if "schedulers" in params:  # [{"cls": T, k: v}] -> [{"type": T, "params": {k: v}}]
            params["schedulers"] = [{"type": c["cls"],
                                     "params": {k: v for k, v in c.items() if k != "cls"}}
                                    for c in params["schedulers"]]
        groups = t["optimizer"]["param_groups"]
        out.append((fn[:-5], {"scheduler": {"type": t["scheduler"].split(":")[-1],
                                            "params": params},
                              "lrs": [g["lr"] for g in groups],
                              "opt": t["optimizer"]["cls"], "steps": t["steps"]}))
    out.append(("multiphase", {"scheduler": {"type": "MultiPhase", "params": {"phases": [
        {"steps": 50, "type": "WarmupLR", "params": {"warmup_num_steps": 50}},
        {"steps": 450, "type": "CosineAnnealingLR", "params": {"T_max": 450}}]}},
        "lrs": [0.01], "opt": "Adam", "steps": 500}))
    return out


def previews():
    for name, rec in schedule_blocks():
        lrs = rec["lrs"]
        opt = {"type": rec["opt"], "params": {"lr": lrs[0]}}
        if rec["opt"] == "SGD":
            opt["params"]["momentum"] = 0.9
        body = {"ds_config": {"train_batch_size": 8, "optimizer": opt,
                              "scheduler": rec["scheduler"]},
                "steps": min(rec["steps"], 2000)}
        if len(lrs) > 1:
            body["param_groups"] = [{"lr": lr} for lr in lrs]
        put("dsconfig", name, body)
    put("dsconfig", "bare_ds_config", {"optimizer": {"type": "SGD", "params": {"lr": 0.1}},
                                       "scheduler": {"type": "StepLR",
                                                     "params": {"step_size": 3}}})
    put("dsconfig", "job_form", TUTORIAL)
    put("dsconfig", "no_scheduler", {"ds_config": {"optimizer": {"type": "Lion",
                                                                  "params": {"lr": 1e-4}}},
                                     "steps": 5})
    put("dsconfig", "bad_steps", {"ds_config": TUTORIAL["ds_config"], "steps": -1})
    put("dsconfig", "bad_groups", {"ds_config": TUTORIAL["ds_config"],
                                   "param_groups": [{"lr": "x"}]})


def csvs():
    for n in ("iris", "wine"):
        put("csv", n, open("data/%s.csv" % n, "rb").read())
    digits = open("data/digits.csv", "rb").read().split(b"\n")
    put("csv", "digits_head", b"\n".join(digits[:40]) + b"\n")
    put("csv", "quoted", 'a,"b,c","d""e"\r\n1,"2",3\r\n"4",5,"6\n7"\r\n')
    put("csv", "cr_only", "x,y\r1,2\r3,4\r")
    put("csv", "spaces", " x , y \n 1 , 2 \n\n3,4\n")
    put("csv", "numbers", "a,b,c\n1e3,-0.5,+7\n0x10,inf,nan\n1e400,-1e-400,.5\n")
    put("csv", "classes", "label,f1,f2\n0,1,2\n2,3,4\n1,5,6\n2.5,1,1\n-1,0,0\n")
    put("csv", "bad_ragged", "a,b\n1,2,3\n")
    put("csv", "bad_quote", 'a,b\n1,"2\n')
    put("csv", "bad_stray_quote", 'a,b\n1,2"3\n')
    put("csv", "bad_nul", b"a,b\n1,\x002\n")
    put("csv", "bad_dup_header", "a,a\n1,2\n")
    put("csv", "bad_header_only", "a,b\n")
    put("csv", "bad_empty", "")
    put("csv", "bad_long_field", "a,b\n" + "1" * 5000 + ",2\n")
    put("csv", "one_column", "y\n1\n2\n")


# fuzz_http's token and framing: METHOD \0 TARGET \0 HEADERS \0 BODY.
HTTP_AUTH = "Authorization: Bearer fuzz-token"


def req(name, method, target, headers=(HTTP_AUTH,), body=b""):
    if isinstance(body, (dict, list)):
        body = json.dumps(body, separators=(",", ":"))
    if isinstance(body, str):
        body = body.encode()
    put("http", name, method.encode() + b"\0" + target.encode() + b"\0" +
        "\n".join(headers).encode() + b"\0" + body)


def http_requests():
    J = "Content-Type: application/json"
    job = dict(TUTORIAL, data={"type": "synthetic", "task": "regression", "samples": 64,
                               "features": 10})
    preview = {"ds_config": TUTORIAL["ds_config"], "steps": 50}
    # The replay runs seeds in name order: a_ makes a job and a data set, b_ uses them, z_
    # removes them at the end.
    req("a_jobs_create", "POST", "/v1/jobs", (HTTP_AUTH, J), job)
    req("a_datasets_create", "POST", "/v1/datasets?name=pts", (HTTP_AUTH, "Content-Type: text/csv"),
        "x,y\n1,2\n3,4\n5,6\n")
    req("healthz", "GET", "/healthz", ())
    req("healthz_head", "HEAD", "/healthz", ())
    req("prometheus", "GET", "/metrics")
    req("bad_prometheus_no_token", "GET", "/metrics", ())
    req("bad_token", "GET", "/v1/jobs", ("Authorization: Bearer wrong",))
    req("bad_token_scheme", "GET", "/v1/jobs", ("Authorization: Basic fuzz-token",))
    req("b_jobs_list", "GET", "/v1/jobs?state=queued&limit=5&offset=0")
    req("bad_jobs_list_limit", "GET", "/v1/jobs?limit=-1&state=nope")
    req("b_jobs_get", "GET", "/v1/jobs/j_000001")
    req("bad_jobs_get_missing", "GET", "/v1/jobs/j_999999")
    req("bad_jobs_get_long_id", "GET", "/v1/jobs/" + "j" * 200)
    for act in ("pause", "resume"):
        req("b_jobs_" + act, "POST", "/v1/jobs/j_000001/" + act, (HTTP_AUTH, J), "{}")
        req("bad_jobs_%s_missing" % act, "POST", "/v1/jobs/nope/" + act)
    req("z_jobs_cancel", "POST", "/v1/jobs/j_000001/cancel", (HTTP_AUTH, J), "{}")
    req("bad_jobs_cancel_missing", "POST", "/v1/jobs/nope/cancel")
    req("z_jobs_delete", "DELETE", "/v1/jobs/j_000001")
    req("bad_jobs_delete_missing", "DELETE", "/v1/jobs/j_000404")
    req("b_jobs_metrics", "GET", "/v1/jobs/j_000001/metrics?from=0&to=100&max_points=10")
    req("b_jobs_metrics_csv", "GET", "/v1/jobs/j_000001/metrics?format=csv")
    req("bad_jobs_metrics_args", "GET", "/v1/jobs/j_000001/metrics?from=x&max_points=0")
    req("b_jobs_checkpoints", "GET", "/v1/jobs/j_000001/checkpoints")
    req("b_jobs_weights", "GET", "/v1/jobs/j_000001/weights?step=3")
    req("b_jobs_predict", "POST", "/v1/jobs/j_000001/predict", (HTTP_AUTH, J),
        {"inputs": [[0] * 10]})
    req("bad_jobs_predict_body", "POST", "/v1/jobs/j_000001/predict", (HTTP_AUTH, J), "[1,")
    req("b_events_job", "GET", "/v1/jobs/j_000001/events")
    req("events_all_last_id", "GET", "/v1/events", (HTTP_AUTH, "Last-Event-ID: 1"))
    req("events_all_query_token", "GET", "/v1/events?access_token=fuzz-token", ())
    req("bad_events_last_id", "GET", "/v1/events", (HTTP_AUTH, "Last-Event-ID: -x9"))
    req("bad_events_query_token", "GET", "/v1/jobs/j_000001/events?access_token=nope", ())
    req("bad_jobs_create_spec", "POST", "/v1/jobs", (HTTP_AUTH, J),
        dict(job, steps=-3, model={"type": "mlp"}))
    req("bad_jobs_create_json", "POST", "/v1/jobs", (HTTP_AUTH, J), '{"name":')
    req("bad_jobs_create_media", "POST", "/v1/jobs", (HTTP_AUTH, "Content-Type: image/png"), job)
    req("bad_jobs_create_empty", "POST", "/v1/jobs", (HTTP_AUTH, J))
    req("bad_jobs_create_oversize", "POST", "/v1/jobs", (HTTP_AUTH, J), " " * 16385)
    req("bad_jobs_create_content_length", "POST", "/v1/jobs",
        (HTTP_AUTH, J, "Content-Length: 99999999999"), "{}")
    req("datasets_list", "GET", "/v1/datasets")
    req("b_datasets_get", "GET", "/v1/datasets/d_000001")
    req("z_datasets_delete", "DELETE", "/v1/datasets/d_000001")
    req("bad_datasets_get_missing", "GET", "/v1/datasets/d_999999")
    req("bad_datasets_create_csv", "POST", "/v1/datasets?name=bad", (HTTP_AUTH,), "a,b\n1,2,3\n")
    req("bad_datasets_create_oversize", "POST", "/v1/datasets?name=big",
        (HTTP_AUTH, "Content-Type: text/csv"), "a,b\n" + "1,2\n" * 1100)
    req("preview", "POST", "/v1/schedules/preview", (HTTP_AUTH, J), preview)
    req("preview_csv", "POST", "/v1/schedules/preview?format=csv", (HTTP_AUTH, J), preview)
    req("bad_preview_format", "POST", "/v1/schedules/preview?format=xml", (HTTP_AUTH, J), preview)
    req("bad_preview_body", "POST", "/v1/schedules/preview", (HTTP_AUTH, J),
        {"ds_config": {"optimizer": {"type": "Adam", "params": {"lr": -1}}}})
    req("bad_preview_method", "GET", "/v1/schedules/preview")
    req("static_index", "GET", "/", ())
    req("static_file", "GET", "/app.js", ())
    req("bad_static_missing", "GET", "/nothing.txt", ())
    req("bad_path", "GET", "/v1/nothing")
    req("bad_method", "PUT", "/v1/jobs/j_000001")
    req("bad_expect_continue", "POST", "/v1/schedules/preview", (HTTP_AUTH, J, "Expect: 100-continue"), preview)
    req("bad_chunked", "POST", "/v1/schedules/preview",
        (HTTP_AUTH, J, "Transfer-Encoding: chunked"), b"5\r\n{\"ds_\r\n0\r\n\r\n")
    req("bad_request_line", "GE T", "/ x")
    # A hostile page (README "Access"): simple-request bodies, foreign origins, a rebinding
    # Host (the harness sends Host: 127.0.0.1 too, so the daemon sees it twice), strict input.
    spec = json.dumps(job, separators=(",", ":"))
    req("bad_hostile_text_plain", "POST", "/v1/jobs", (HTTP_AUTH, "Content-Type: text/plain"), job)
    req("bad_hostile_form", "POST", "/v1/jobs",
        (HTTP_AUTH, "Content-Type: application/x-www-form-urlencoded"), job)
    req("bad_hostile_no_type", "POST", "/v1/jobs", (HTTP_AUTH,), job)
    req("bad_hostile_origin", "POST", "/v1/jobs", (HTTP_AUTH, J, "Origin: http://evil.example"), job)
    req("bad_hostile_origin_null", "POST", "/v1/jobs/j_000001/cancel", (HTTP_AUTH, "Origin: null"))
    req("bad_hostile_origin_port", "DELETE", "/v1/jobs/j_000001",
        (HTTP_AUTH, "Origin: http://127.0.0.1:1"))
    req("own_origin", "GET", "/v1/jobs", (HTTP_AUTH, "Origin: http://127.0.0.1"))
    req("bad_hostile_rebinding", "GET", "/v1/jobs", (HTTP_AUTH, "Host: evil.example"))
    req("bad_hostile_dataset_origin", "POST", "/v1/datasets?name=evil",
        (HTTP_AUTH, "Content-Type: text/plain", "Origin: https://evil.example"), "a,b\n1,2\n")
    req("bad_dup_authorization", "GET", "/v1/jobs", (HTTP_AUTH, HTTP_AUTH))
    req("bad_dup_content_type", "POST", "/v1/jobs", (HTTP_AUTH, J, J), job)
    req("bad_strict_leading_zero", "POST", "/v1/jobs", (HTTP_AUTH, J),
        spec.replace('"steps":1000', '"steps":01000'))
    req("bad_strict_trailing_point", "POST", "/v1/schedules/preview", (HTTP_AUTH, J),
        json.dumps(preview).replace('"steps": 50', '"steps": 50.'))
    req("bad_strict_nul_name", "POST", "/v1/jobs", (HTTP_AUTH, J),
        spec.replace('"name":"warmup-demo"', '"name":"a\\u0000b"'))
    req("bad_strict_utf8_name", "POST", "/v1/jobs", (HTTP_AUTH, J),
        spec.encode().replace(b'"name":"warmup-demo"', b'"name":"a\xff\xfeb"'))
    req("bad_strict_csv_utf8", "POST", "/v1/datasets?name=u", (HTTP_AUTH, "Content-Type: text/csv"),
        b"a,\xc3\x28\n1,2\n")
    req("bad_strict_dataset_name_nul", "POST", "/v1/datasets?name=a%00b",
        (HTTP_AUTH, "Content-Type: text/csv"), "a,b\n1,2\n")
    req("bad_head_version", "GET", "/healthz HTTP/2.0\r\nX: y", ())


# Sweeps (POST /v1/sweeps, docs/EXPERIMENTS.md) and LR finder requests (POST /v1/lr_finder):
# the documented ones, and each nearly valid in one way (one field wrong, paths that overlap,
# val_acc of a job without accuracy).
DIGITS = {
    "seed": 7, "model": {"type": "mlp", "inputs": 64, "hidden": [32], "outputs": 10},
    "loss": "cross_entropy", "data": {"type": "builtin", "name": "digits"}, "steps": 1800,
    "validation": {"fraction": 0.2, "every_steps": 50},
    "ds_config": {"train_batch_size": 32,
                  "optimizer": {"type": "AdamW", "params": {"lr": 0.001, "weight_decay": 0.01}}},
}
REGRESSION = {
    "model": {"type": "linear", "inputs": 2, "outputs": 1},
    "data": {"type": "synthetic", "task": "regression", "samples": 64, "features": 2},
    "steps": 10, "validation": {"fraction": 0.25, "every_steps": 5},
    "ds_config": {"train_batch_size": 8, "optimizer": {"type": "SGD", "params": {"lr": 0.1}}},
}
# inline 0/1 targets: mse (no accuracy) and bce (accuracy) both take them
INLINE = {
    "model": {"type": "linear", "inputs": 2, "outputs": 1}, "loss": "mse",
    "data": {"type": "inline", "x": [[0, 0], [0, 1], [1, 0], [1, 1]] * 2,
             "y": [[0], [1], [1], [1]] * 2},
    "steps": 10, "validation": {"fraction": 0.25, "every_steps": 5},
    "ds_config": {"train_batch_size": 2, "optimizer": {"type": "SGD", "params": {"lr": 0.1}}},
}
LR = "ds_config.optimizer.params.lr"


def sweeps():
    docs = {"name": "lr-wd", "base": DIGITS,
            "parameters": {LR: {"log_uniform": [1e-4, 1e-1]},
                           "ds_config.optimizer.params.weight_decay": [0, 0.01, 0.1]},
            "search": "random", "trials": 12, "metric": "val_loss", "mode": "min",
            "max_concurrent": 2,
            "early_stopping": {"type": "asha", "min_steps": 200, "reduction_factor": 3}}
    put("sweep", "docs_asha", docs)
    good = {"base": DIGITS, "parameters": {LR: [0.01, 0.1]}, "metric": "loss"}
    put("sweep", "grid_default", good)
    put("sweep", "grid_two", {"base": DIGITS, "parameters": {LR: [0.001, 0.01],
                                                             "model.hidden[0]": [8, 16, 32]}})
    put("sweep", "grid_trials", dict(good, search="grid", trials=2))
    put("sweep", "seed_list", dict(good, parameters={"seed": [1, 2, 3]}, max_concurrent=1))
    put("sweep", "uniform", dict(good, parameters={LR: {"uniform": [0.001, 0.1]}}, trials=5,
                                 seed=3))
    put("sweep", "val_acc", dict(good, metric="val_acc", mode="max"))
    put("sweep", "val_acc_by_loss", dict(good, base=INLINE, metric="val_acc",
                                         parameters={"seed": [1, 2], "loss": ["bce"]}))
    put("sweep", "hidden_list", dict(good, parameters={"model.hidden": [[8], [16, 8]]}))
    put("sweep", "validation_fraction", dict(good, metric="val_loss",
                                             parameters={"validation.fraction": [0.1, 0.3]}))
    put("sweep", "optimizer_block", dict(good, parameters={"ds_config.optimizer": [
        {"type": "SGD", "params": {"lr": 0.1, "momentum": 0.9}},
        {"type": "Adam", "params": {"lr": 0.001}}]}))
    put("sweep", "asha_loss", dict(good, early_stopping={"type": "asha", "min_steps": 1}))
    put("sweep", "sgd_momentum", dict(good, base=REGRESSION, parameters={
        "ds_config.optimizer.params.momentum": {"uniform": [0, 0.99]},
        LR: {"log_uniform": [1e-3, 1]}}, trials=20, seed=11))
    bad = {
        "not_object": [1, 2],
        "no_base": {"parameters": good["parameters"]},
        "no_parameters": {"base": DIGITS},
        "base_bad": dict(good, base=dict(DIGITS, model={"type": "mlp", "inputs": 64,
                                                        "hidden": [-1], "outputs": 10})),
        "path_unknown": dict(good, parameters={"ds_config.optimizer.params.nope": [1, 2]}),
        "path_malformed": dict(good, parameters={"model..hidden": [1]}),
        "path_index": dict(good, parameters={"model.hidden[5]": [1]}),
        "log_uniform_zero": dict(good, parameters={LR: {"log_uniform": [0, 1]}}),
        "uniform_reversed": dict(good, parameters={LR: {"uniform": [0.2, 0.1]}},
                                 search="random"),
        "uniform_int": dict(good, parameters={"model.hidden[0]": {"uniform": [4, 16]}},
                            search="random"),
        "grid_range": dict(good, parameters={LR: {"uniform": [0.1, 0.2]}}, search="grid"),
        "grid_trials": dict(good, trials=3),
        "trials_text": dict(good, trials="many"),
        "trials_zero": dict(good, search="random", trials=0),
        "max_concurrent": dict(good, max_concurrent=0),
        "metric": dict(good, metric="accuracy"),
        "metric_no_validation": dict(good, metric="val_loss",
                                     base={k: v for k, v in DIGITS.items() if k != "validation"}),
        "asha_no_min": dict(good, early_stopping={"type": "asha"}),
        "asha_type": dict(good, early_stopping={"type": "hyperband", "min_steps": 10}),
        "asha_eta": dict(good, early_stopping={"type": "asha", "min_steps": 10,
                                               "reduction_factor": 1}),
        "unknown_key": dict(good, colour="red"),
        "name_long": dict(good, name="n" * 122),
        "overlap_parent": dict(good, parameters={LR: [0.01], "ds_config.optimizer.params":
                                                 [{"lr": 0.1}]}),
        "overlap_index": dict(good, parameters={"model.hidden": [[8]], "model.hidden[0]": [16]}),
        "val_acc_regression": dict(good, base=REGRESSION, metric="val_acc"),
        "val_acc_some": dict(good, base=INLINE, metric="val_acc",
                             parameters={"loss": ["bce", "mse"]}),
        "val_acc_lost": dict(good, metric="val_acc", parameters={"loss": ["cross_entropy",
                                                                          "mse"]}),
        "too_many": dict(good, parameters={LR: [0.1] * 40, "seed": list(range(40))}),
        "ignored_key": dict(good, parameters={"model.colour": ["red"]}),
    }
    for name, body in bad.items():
        put("sweep", "bad_" + name, body)
    text = json.dumps(good)
    put("sweep", "bad_cut", text[:-7])
    put("sweep", "bad_dup_path", text.replace('"parameters": {', '"parameters": {"%s": [1e-3], ' % LR))


IRIS = {
    "seed": 1, "model": {"type": "mlp", "inputs": 4, "hidden": [8], "outputs": 3},
    "loss": "cross_entropy", "data": {"type": "builtin", "name": "iris"}, "epochs": 5,
    "ds_config": {"train_batch_size": 16,
                  "optimizer": {"type": "SGD", "params": {"lr": 0.01, "momentum": 0.9}}},
}


def lrfinds():
    put("lrfind", "iris", {"job": IRIS, "steps": 200})
    put("lrfind", "docs", {"job": TUTORIAL, "min_lr": 1e-6, "max_lr": 1, "steps": 300})
    put("lrfind", "bare_job", IRIS)
    put("lrfind", "linear", {"job": IRIS, "min_lr": 1e-4, "max_lr": 0.5, "steps": 50,
                             "mode": "linear", "stop_factor": 10})
    put("lrfind", "groups", {"job": dict(DIGITS, ds_config={
        "train_batch_size": 32, "optimizer": {"type": "Adam", "params": {"lr": 0.01}},
        "param_groups": [{"params": ["layers.0.weight"], "lr": 0.001}]}), "steps": 40})
    put("lrfind", "long", {"job": REGRESSION, "steps": 100000, "min_lr": 1e-9, "max_lr": 100})
    put("lrfind", "narrow", {"job": REGRESSION, "steps": 5, "min_lr": 0.1, "max_lr": 0.2})
    put("lrfind", "inline_linear", {"job": INLINE, "mode": "linear", "steps": 1000,
                                    "min_lr": 1e-30, "max_lr": 1e30})
    bad = {
        "max_below_min": {"job": IRIS, "min_lr": 1, "max_lr": 0.1},
        "steps_few": {"job": IRIS, "steps": 2},
        "mode": {"job": IRIS, "mode": "cosine"},
        "no_job": {"min_lr": 1e-6},
        "job_loss": {"job": dict(IRIS, loss="hinge")},
        "stop_factor": {"job": IRIS, "stop_factor": 0.5},
        "unknown": {"job": IRIS, "stepz": 50},
        "job_text": {"job": "iris"},
        "no_optimizer": {"job": {k: v for k, v in IRIS.items() if k != "ds_config"}},
        "ds_config_list": {"job": dict(IRIS, ds_config=[1])},
        "params_list": {"job": dict(IRIS, ds_config={"train_batch_size": 16,
                                                     "optimizer": {"type": "SGD",
                                                                   "params": [0.1]}})},
        "max_huge": {"job": IRIS, "min_lr": 1e-300, "max_lr": 1e300},
        "ratio_inf": {"job": IRIS, "min_lr": 1e-300, "max_lr": 1e30},
        "bare_bad": dict(IRIS, loss="hinge"),
    }
    for name, body in bad.items():
        put("lrfind", "bad_" + name, body)


if __name__ == "__main__":
    jobspecs()
    previews()
    csvs()
    http_requests()
    sweeps()
    lrfinds()

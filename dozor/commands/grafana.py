"""`dozor grafana build|push`: Grafana dashboards and the InfluxDB datasource, as code."""

from __future__ import annotations

from pathlib import Path

import typer

from dozor.commands._common import JsonOpt, console, emit_json, fail

app = typer.Typer(no_args_is_help=True, help="Grafana: generate the provisioned dashboards, push them to a Grafana.")


def default_out() -> Path:
    """deploy/grafana of the source checkout this runs from, else of the current directory."""
    repo = Path(__file__).resolve().parents[2]
    return (repo if (repo / "pyproject.toml").exists() else Path.cwd()) / "deploy" / "grafana"


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="grafana")


@app.command("build")
def build(out: Path | None = typer.Option(None, "--out", "-o",
                                         help="the deploy/grafana directory [default: the checkout's]"),
          check: bool = typer.Option(False, "--check", help="change nothing; exit 1 if a file is out of date"),
          as_json: bool = JsonOpt) -> None:
    """Write the dashboards JSON and the provisioning YAML (deterministic: same code, same bytes)."""
    from hub.grafana.dashboards import files

    out = out or default_out()
    changed: list[str] = []
    for rel, text in files().items():
        path = out / rel
        try:
            current = path.read_text(encoding="utf-8") if path.exists() else None
        except OSError as exc:
            fail(f"cannot read {path}: {exc.strerror}", as_json=as_json)
        if current == text:
            continue
        changed.append(str(path))
        if not check:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
            except OSError as exc:
                fail(f"cannot write {path}: {exc.strerror}", as_json=as_json)
    if as_json:
        emit_json({"changed": changed, "check": check})
    elif changed:
        verb = "out of date" if check else "wrote"
        for p in changed:
            console.print(f"{verb}: {p}")
    else:
        console.print(f"{out}: up to date")
    if check and changed:
        raise typer.Exit(1)


@app.command("push")
def push(url: str = typer.Option(..., "--url", envvar="GRAFANA_URL", help="Grafana base URL"),
         token: str | None = typer.Option(None, "--token", envvar="GRAFANA_TOKEN",
                                          help="service-account token (Admin role)"),
         influx_url: str = typer.Option("http://influxdb:8086", "--influx-url", envvar="INFLUX_URL",
                                        help="InfluxDB URL as Grafana's server reaches it"),
         influx_token: str | None = typer.Option(None, "--influx-token", envvar="INFLUX_TOKEN",
                                                 help="InfluxDB 2.x/3.x token, sent as 'Authorization: Token'"),
         influx_no_auth: bool = typer.Option(False, "--influx-no-auth",
                                             help="the datasource needs no token (InfluxDB 1.x without auth)"),
         database: str = typer.Option(None, "--database", help="InfluxQL database (DBRP-mapped bucket) "
                                      "[default: dozor; with --tenant NAME: dozor-NAME]"),
         tenant: str = typer.Option("", "--tenant", help="a city of a multi-city deployment: its own folder "
                                    "(dozor-NAME), datasource (dozor-influxdb-NAME) and dashboard copies"),
         datasource: bool = typer.Option(True, "--datasource/--no-datasource",
                                         help="also create or update the InfluxDB datasource"),
         as_json: bool = JsonOpt) -> None:
    """Upload the datasource and every dashboard (overwriting older versions) to a running Grafana."""
    from hub.grafana import dashboards as dash
    from hub.grafana.push import GrafanaClient, GrafanaError
    from hub.grafana.push import push as do_push

    if not url.startswith(("http://", "https://")):
        fail(f"--url must be an http(s) URL, not {url!r}", as_json=as_json)
    if datasource and not influx_token and not influx_no_auth:
        fail("the datasource needs the InfluxDB token: pass --influx-token or set INFLUX_TOKEN "
             "(or --influx-no-auth for InfluxDB 1.x without auth, or --no-datasource)", as_json=as_json)
    auth = None if influx_no_auth else influx_token
    try:
        if tenant:
            from hub.grafana import tenant as per_tenant

            ds = per_tenant.tenant_datasource(influx_url, auth, tenant, database=database) if datasource else None
            boards, (folder_uid, folder_title) = per_tenant.tenant_dashboards(tenant), per_tenant.folder(tenant)
        else:
            ds = dash.datasource(influx_url, auth, database=database or dash.DATABASE) if datasource else None
            boards, folder_uid, folder_title = dash.dashboards(), dash.FOLDER_UID, dash.FOLDER_TITLE
    except ValueError as exc:
        fail(f"--tenant: {exc}", as_json=as_json, code=2)
    try:
        with GrafanaClient(url, token) as client:
            result = do_push(client, boards, datasource=ds, folder_uid=folder_uid, folder_title=folder_title)
    except GrafanaError as exc:
        fail(str(exc), as_json=as_json)
    if as_json:
        emit_json(result.to_dict())
        return
    console.print(f"Grafana {result.grafana_version or '?'} at {url}: datasource {result.datasource}, "
                  f"folder {result.folder}")
    for uid, path in result.dashboards.items():
        console.print(f"  {uid}: {url.rstrip('/')}{path}")

"""`edgefit serve OUT/ --port P`: the edge server of split computing; serves a split bundle's tail (and its
full model, for full offloading) to authenticated devices."""

from __future__ import annotations

import argparse
import os


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="serve a split bundle's tail to devices (split computing edge server)",
        description="Devices run the head ('edgefit run --split') and send the bottleneck here. The shared "
        "secret comes from --secret-file or the EDGEFIT_SPLIT_SECRET environment variable.",
    )
    p.add_argument("bundle", help="split bundle directory ('edgefit compile ... --split')")
    p.add_argument("--port", type=int, required=True, help="TCP port (0: any free port, printed)")
    p.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: loopback only)"
    )
    p.add_argument("--secret-file", help="file holding the shared secret (>= 8 bytes)")
    p.add_argument("--threads", type=int, default=1, help="worker threads running the model (default 1)")
    p.add_argument("--max-batch", type=int, default=8, help="requests run as one batch at most (default 8)")
    p.add_argument(
        "--batch-window-ms",
        type=float,
        default=0.0,
        help="wait this long for more requests to batch (default 0)",
    )
    p.add_argument(
        "--idle-timeout", type=float, default=60.0, help="seconds a device may stay silent (default 60)"
    )
    p.add_argument(
        "--max-clients", type=int, default=256, help="concurrent connections at most (default 256)"
    )
    p.add_argument(
        "--backend", default="auto", choices=("auto", "native", "reference"), help="runtime for the model"
    )
    g = p.add_argument_group("TLS (optional)")
    g.add_argument("--tls-cert", help="PEM certificate (with --tls-key)")
    g.add_argument("--tls-key", help="PEM private key")
    g.add_argument(
        "--tls-self-signed",
        metavar="DIR",
        help="make (once) and use a self-signed certificate in DIR; devices pin DIR/split-cert.pem",
    )
    p.set_defaults(func=drive)


def drive(args: argparse.Namespace) -> int:
    import asyncio
    import logging
    import signal

    from edgefit.errors import UserError
    from edgefit.runtime.split.protocol import as_secret, read_secret_file
    from edgefit.runtime.split.server import ServerConfig, SplitServer

    if args.secret_file:
        secret = read_secret_file(args.secret_file)
    elif os.environ.get("EDGEFIT_SPLIT_SECRET"):
        secret = as_secret(os.environ["EDGEFIT_SPLIT_SECRET"])
    else:
        raise UserError(
            "a shared secret is required: pass --secret-file F (e.g. 'head -c 32 /dev/urandom | base64 > F') "
            "or set EDGEFIT_SPLIT_SECRET"
        )
    if not 0 <= args.port <= 65535:
        raise UserError(f"--port must be within 0..65535, got {args.port}")
    ssl_context = None
    if args.tls_self_signed or args.tls_cert or args.tls_key:
        from edgefit.runtime.split import tls

        if args.tls_self_signed:
            cert, key = tls.self_signed(args.tls_self_signed, hosts=("localhost", "127.0.0.1", args.host))
        elif args.tls_cert and args.tls_key:
            cert, key = args.tls_cert, args.tls_key
        else:
            raise UserError("--tls-cert and --tls-key go together")
        ssl_context = tls.server_context(cert, key)
    config = ServerConfig(
        host=args.host,
        port=args.port,
        threads=args.threads,
        max_batch=args.max_batch,
        batch_window_s=args.batch_window_ms / 1e3,
        idle_timeout_s=args.idle_timeout,
        max_clients=args.max_clients,
        backend=args.backend,
        ssl_context=ssl_context,
    )
    server = SplitServer(args.bundle, secret, config)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    async def main() -> None:
        serving = asyncio.current_task()
        assert serving is not None
        await server.start()
        m = server.model
        print(
            f"serving {m.model} from {args.bundle} on {args.host}:{server.port} "
            f"({'TLS' if ssl_context else 'plain TCP'}; tail + full; {m.backend} runtime, "
            f"{args.threads} thread(s), max batch {args.max_batch})",
            flush=True,
        )
        if args.host not in ("127.0.0.1", "localhost", "::1") and ssl_context is None:
            print(
                "warning: serving beyond loopback without TLS: frames after the handshake are not encrypted",
                flush=True,
            )
        # SIGTERM (systemd, kill) stops as cleanly as Ctrl-C: connections closed, stats printed.
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, serving.cancel)
        try:
            await server.serve_forever()
        except asyncio.CancelledError:
            pass
        finally:
            await server.close()

    try:
        asyncio.run(main())
    except OSError as exc:
        raise UserError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    except KeyboardInterrupt:
        pass
    print(f"stopped; {dict(server.stats)}", flush=True)
    return 0

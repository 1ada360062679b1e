"""The service framework every ringpipe daemon is built on.

One module per job:

* :mod:`~services.common.config` -- typed, layered ``KEY value`` configuration
* :mod:`~services.common.counters` -- counters, drop reasons, health
* :mod:`~services.common.lifecycle` -- the SKA PST scan state machine and the ``Service`` hooks
* :mod:`~services.common.protocol`, :mod:`~services.common.control` -- the msgpack control socket
* :mod:`~services.common.runner` -- ``run_service``: signals, sd_notify, watchdog, exit codes
* :mod:`~services.common.options` -- the shared click options of every daemon
* :mod:`~services.common.systemd` -- sd_notify and the watchdog (logging: ``ringbuf.setup_logging``)
* :mod:`~services.common.ctl` -- ``svc-ctl``
* :mod:`~services.common.processes` -- start, drive and stop daemons as real processes (the
  demo, the end-to-end tests and the benchmarks)
"""

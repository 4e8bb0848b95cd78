"""What runs inside the Rasa server's process: the Attendant input channel (:mod:`bot.rasa.channel`) and the
server's configuration beside it (``config.yml`` pipeline and policies, ``credentials.yml`` channels,
``endpoints.yml`` tracker store and action server). It imports only :mod:`actions.shared` of the project (and
the call-state vocabulary that uses), never the gateway's per-call runtime."""

"""The ``interhand`` commands' work: ``infer`` (images and videos), ``bench`` (network and
node), ``demo`` (the node over DDS on rendered frames). They use :mod:`..pipeline` and, for the
node, :mod:`..ros`; nothing else imports them."""

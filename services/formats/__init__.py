"""Wire and file formats shared by receivers, senders and processors."""

"""Ray Serve application builders (thin over physio_ray) and their web pages."""

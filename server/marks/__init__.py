"""Annotations, measurements and key images on stored images (domain services, no HTTP)."""

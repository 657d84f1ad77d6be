"""OpenSpine: an open-source national health information exchange modelled on NHS Spine."""

__version__ = "0.9.1"

"""azeval: prompt evaluation and regression testing for Azure OpenAI chat deployments."""

__version__ = "0.1.0"

"""The built-in plugins: edcore's own defaults, registered through the same call as third-party plugins.

Provider hooks here are ``trylast`` so that any installed or config plugin overrides them.
"""

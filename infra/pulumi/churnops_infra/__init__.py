"""The churnops platform as Pulumi components; ``__main__.py`` composes them into a stack."""

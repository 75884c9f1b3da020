"""Statistics defined by Kusto, Elastic and the periodicity literature, one module each."""

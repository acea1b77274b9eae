"""arrears: the domain package behind the collection-cycle DAGs."""
